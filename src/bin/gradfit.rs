fn main() {
    println!("gradfit {}", env!("CARGO_PKG_VERSION"));
}
