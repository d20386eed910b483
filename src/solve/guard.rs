//! A problem wrapper that makes argmin's own solvers safe to run.

use std::cell::{Cell, RefCell};

use argmin::core::{CostFunction, Gradient, Hessian};

use crate::error::{check_finite, Error, Result};
use crate::problems::Objective;
use crate::{Matrix, Vector};

/// Wraps an [`Objective`] for argmin's solvers:
///
/// - a non-finite parameter, cost, gradient or Hessian becomes an error, so argmin's
///   More–Thuente cannot loop forever on a NaN step (argmin issue 497);
/// - an evaluation budget ends any inner loop that does not bound itself;
/// - a one-entry memo of (x, f, ∇f): argmin asks for the cost and then the gradient at the
///   same x, and both come from one fused evaluation.
///
/// Through [`Objective`] it passes every call straight on (gradfit's own solvers handle
/// non-finite values themselves and bound their line searches).
#[derive(Debug)]
pub struct Guarded<'a, P: ?Sized> {
    inner: &'a P,
    budget: u64,
    used: Cell<u64>,
    memo: RefCell<Memo>,
}

#[derive(Debug)]
struct Memo {
    valid: bool,
    x: Vector,
    f: f64,
    g: Vector,
}

impl<'a, P: Objective + ?Sized> Guarded<'a, P> {
    /// Wraps `inner`, allowing at most `budget` evaluations through argmin's traits.
    pub fn new(inner: &'a P, budget: u64) -> Self {
        let n = inner.dim();
        Guarded {
            inner,
            budget,
            used: Cell::new(0),
            memo: RefCell::new(Memo {
                valid: false,
                x: Vector::zeros(n),
                f: f64::NAN,
                g: Vector::zeros(n),
            }),
        }
    }

    /// Evaluations of the inner problem made through argmin's traits (memo hits excluded).
    pub fn inner_evaluations(&self) -> u64 {
        self.used.get()
    }

    fn spend(&self) -> Result<()> {
        let used = self.used.get() + 1;
        if used > self.budget {
            return Err(Error::Budget { budget: self.budget });
        }
        self.used.set(used);
        Ok(())
    }

    /// f and ∇f at x, from the memo or one fused evaluation.
    fn fg(&self, x: &Vector) -> Result<std::cell::Ref<'_, Memo>> {
        {
            let memo = self.memo.borrow();
            if memo.valid && memo.x == *x {
                return Ok(memo);
            }
        }
        check_finite("parameter vector passed to the problem", x.iter())?;
        self.spend()?;
        {
            let memo = &mut *self.memo.borrow_mut();
            memo.valid = false;
            memo.f = self.inner.value_and_gradient_into(x, &mut memo.g)?;
            memo.x.copy_from(x);
            memo.valid = true;
            if !memo.f.is_finite() {
                return Err(Error::NonFinite {
                    what: "cost".into(),
                    index: 0,
                });
            }
            check_finite("gradient", memo.g.iter())?;
        }
        Ok(self.memo.borrow())
    }
}

impl<P: Objective + ?Sized> Objective for Guarded<'_, P> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn value(&self, x: &Vector) -> Result<f64> {
        self.inner.value(x)
    }
    fn value_and_gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<f64> {
        self.inner.value_and_gradient_into(x, g)
    }
    fn gradient_into(&self, x: &Vector, g: &mut Vector) -> Result<()> {
        self.inner.gradient_into(x, g)
    }
    fn hessian_into(&self, x: &Vector, h: &mut Matrix) -> Result<()> {
        self.inner.hessian_into(x, h)
    }
    fn hessian_vec_into(&self, x: &Vector, v: &Vector, out: &mut Vector) -> Result<()> {
        self.inner.hessian_vec_into(x, v, out)
    }
    fn newton_direction_into(&self, x: &Vector, g: &Vector, d: &mut Vector) -> Result<bool> {
        self.inner.newton_direction_into(x, g, d)
    }
    fn canonicalize(&self, x: &mut Vector) {
        self.inner.canonicalize(x)
    }
    fn has_minimum(&self) -> bool {
        self.inner.has_minimum()
    }
    fn no_minimum(&self) -> Option<String> {
        self.inner.no_minimum()
    }
    fn not_a_minimum(&self, x: &Vector) -> Option<String> {
        self.inner.not_a_minimum(x)
    }
}

impl<P: Objective + ?Sized> CostFunction for Guarded<'_, P> {
    type Param = Vector;
    type Output = f64;
    fn cost(&self, x: &Vector) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.fg(x)?.f)
    }
}

impl<P: Objective + ?Sized> Gradient for Guarded<'_, P> {
    type Param = Vector;
    type Gradient = Vector;
    fn gradient(&self, x: &Vector) -> std::result::Result<Vector, argmin::core::Error> {
        Ok(self.fg(x)?.g.clone())
    }
}

impl<P: Objective + ?Sized> Hessian for Guarded<'_, P> {
    type Param = Vector;
    type Hessian = Matrix;
    fn hessian(&self, x: &Vector) -> std::result::Result<Matrix, argmin::core::Error> {
        check_finite("parameter vector passed to the problem", x.iter())?;
        self.spend()?;
        let h = self.inner.hessian_matrix(x)?;
        check_finite("Hessian", h.iter())?;
        Ok(h)
    }
}
