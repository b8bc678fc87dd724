//! `boursed`, the exchange daemon: TCP order entry -> sequencer -> matching -> journal -> multicast.
//!
//! Not built yet (issue 5): this binary only says so.

fn main() {
    println!("boursed: the pipeline is not built yet (see docs/ARCHITECTURE.md)");
    std::process::exit(2);
}
