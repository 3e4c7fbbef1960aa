//! Integration tests, one module per area of the SPEC.

mod inputs;
mod records;
mod run;
mod up;
