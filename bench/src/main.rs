//! The load generator; scenarios arrive in their own modules.

fn main() {
    println!("wrenchline-bench: no scenario selected");
}
