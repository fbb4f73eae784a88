//! `#[ringleader::main]` and `#[ringleader::test]`: run an `async fn` on a ringleader runtime.
//!
//! Use them through the `ringleader` crate, which re-exports both.
//!
//! # What they expand to
//!
//! The `async fn` becomes a plain `fn` with the same name, attributes, arguments and return
//! type. Its body moves, unchanged, into an inner `async fn` with the same signature (so `?`
//! and `return` behave as written), and the outer `fn` runs that on a runtime:
//!
//! - by default (or `cores = 1`): `ringleader::block_on(body(args))`, a single-core
//!   [`LocalRuntime`] on the calling thread. Nothing has to be `Send`;
//! - with `cores = N` (N > 1, or any expression): a `ringleader::Runtime` of N pinned cores
//!   is built and the body runs on core 0 through `Runtime::block_on(move || body(args))`.
//!   The arguments and the return value then cross threads and must be `Send` (for `main`,
//!   write `Result<(), Box<dyn Error + Send + Sync>>` rather than `Box<dyn Error>`). The
//!   runtime is shut down when the body returns.
//!
//! `#[ringleader::test]` also adds `#[test]`; other test attributes (`should_panic`, ...) are
//! kept. The option `crate = "path"` names the `ringleader` crate when it is renamed.
//!
//! Generic functions, methods (`self`) and non-`async` functions are refused with a
//! compile error that says so.
//!
//! [`LocalRuntime`]: https://docs.rs/ringleader/latest/ringleader/struct.LocalRuntime.html

use proc_macro::TokenStream;

mod expand;

/// Run an `async fn` (usually `main`) on a ringleader runtime.
///
/// ```text
/// #[ringleader::main]
/// async fn main() {
///     ringleader::time::sleep(std::time::Duration::from_millis(1)).await;
/// }
///
/// // Four pinned cores; the body runs on core 0 and may `spawn_on` the others.
/// #[ringleader::main(cores = 4)]
/// async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     Ok(())
/// }
/// ```
///
/// Options: `cores = N` (an integer literal or any `usize` expression; default 1: a
/// single-core runtime on the calling thread) and `crate = "path"`. See the crate docs for
/// the expansion.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(expand::Kind::Main, attr.into(), item.into()).into()
}

/// Run an `async` test on a ringleader runtime: the function also becomes a `#[test]`.
///
/// ```text
/// #[ringleader::test]
/// async fn sleeps() {
///     ringleader::time::sleep(std::time::Duration::from_millis(1)).await;
/// }
///
/// #[ringleader::test(cores = 2)]
/// async fn runs_on_core_zero_of_two() {
///     assert_eq!(ringleader::current_core(), 0);
///     assert_eq!(ringleader::core_count(), 2);
/// }
/// ```
///
/// Options as for [`macro@main`].
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(expand::Kind::Test, attr.into(), item.into()).into()
}
