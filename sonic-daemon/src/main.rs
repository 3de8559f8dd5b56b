//! ctrmgrd entry point (being written).

fn main() {}
