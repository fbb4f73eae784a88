//! The command-slot rules that are compile errors (docs/design.md §7; each
//! `tests/ui_cmd_slot/*.rs` must fail to build with the error in its `.stderr`):
//!
//! - a `Fetched` hands out the payload's bytes, never `&mut Lease`: the lease cannot be
//!   moved out of the slot while the driver keeps its address;
//! - `commit` consumes the request: it cannot be committed twice;
//! - a `Fetched` stays on its core (`!Send`).

#[test]
fn cmd_slot_rules_are_compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_cmd_slot/*.rs");
}
