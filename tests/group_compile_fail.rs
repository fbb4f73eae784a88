//! G7/G9 at compile time: every lifetime rule the group API promises is a compile error when
//! broken (each `tests/ui/*.rs` must fail to build with the error in its `.stderr`):
//!
//! - a member (op future or group) cannot outlive its lease;
//! - the lease cannot be released (dropped) or moved while a member borrows it;
//! - the lease cannot be mutated, or read, while a member or group borrows it;
//! - two mutable views (members that write into the lease) cannot overlap;
//! - lease contents cannot be reached after the lease is released.

#[test]
fn lease_lifetime_rules_are_compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
