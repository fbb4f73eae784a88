//! The attribute macros refuse what they cannot run, with a message that says why: a
//! non-`async` fn, `cores = 0`, an unknown option, a test with arguments, and (through
//! `Runtime::block_on`'s bounds) a multi-core body whose output is not `Send`.

#[test]
fn macros_refuse_what_they_cannot_run() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/macros_ui/*.rs");
}
