//! Integration tests, one module per area of the SPEC.

mod records;
mod run;
mod tree;
mod up;
