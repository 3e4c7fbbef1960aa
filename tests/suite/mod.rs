//! Integration tests, one module per area of the SPEC.

mod faults;
mod records;
mod run;
mod up;
