//! Integration tests, one module per area of the design (docs/DESIGN.md).

mod completions;
mod faults;
mod guard;
mod handoff;
mod harness;
mod idle;
mod inputs;
mod records;
mod run;
mod session;
mod socket;
mod tree;
mod up;
