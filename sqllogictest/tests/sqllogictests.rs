//! Runs every `.slt` suite (`cargo test -p tributary-sqllogictest`).

fn main() {
    tributary_sqllogictest::main_with_args(std::env::args().skip(1));
}
