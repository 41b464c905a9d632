//! `cargo run -p tributary-sqllogictest -- [--mode batch|streaming|both] [--complete] [FILTER...]`

fn main() {
    tributary_sqllogictest::main_with_args(std::env::args().skip(1));
}
