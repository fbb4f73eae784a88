//! `select!`, `join!` and `try_join!` under tokio's names and with tokio's syntax.
//!
//! They are tokio's own macros (the runtime-agnostic `macros` feature of the `tokio` crate,
//! which `ringleader::sync` already depends on), wrapped so that their documentation speaks
//! about ringleader and a program needs no `tokio` dependency of its own. They poll futures
//! with the caller's waker and never touch a tokio runtime, so they run on any ringleader
//! core.
//!
//! **Why tokio's and not futures'.** `futures::select!` needs every branch to be
//! `FusedFuture` (and `Unpin` when passed by name), has no `, if` preconditions and no
//! refutable patterns that disable a branch; a tokio program ported to it changes every
//! `select!`. With these macros it changes none: `ringleader::select!` accepts exactly what
//! `tokio::select!` accepts (`biased;`, `pat = fut, if cond => body`, `else => body`),
//! with the same semantics.
//!
//! **Cancellation per branch.** When one branch of `select!` completes, every other branch's
//! future is *dropped* before the branch's body runs. For a ringleader op (a read, accept,
//! sleep, ...) dropping is cancelling (docs/cancellation.md): the op's buffer and fd move to
//! its slot, an `ASYNC_CANCEL` is pushed, and they are released at the op's final CQE; a
//! result that raced the cancel is recycled (an accepted fd closed, a ring buffer returned),
//! never delivered. So a branch not taken has no effect *except* what the op did in the
//! kernel before it was cancelled: a dropped `recv` may have consumed bytes that are now
//! lost. Use cancel-safe futures in a `select!` inside a loop (`sync::*::recv`,
//! `time::sleep`, and `next()` on futures-io's `AsyncBufReadExt::lines()` stream, which
//! keeps a partial line in the stream; `read_line`/`read_exact` lose what they read when
//! dropped), or pin one future outside the loop and poll it by `&mut`, so it is not dropped
//! between iterations.
//!
//! `join!`/`try_join!` drop nothing early except on an error: `try_join!` returns the first
//! `Err` and drops (cancels) the other futures still running.

/// Wait on several futures at once; run the body of the first branch whose future completes
/// and whose pattern matches, dropping (cancelling) the others. Tokio's `select!`.
///
/// ```text
/// select! {
///     biased;                               // optional: poll branches in order
///     pattern = future, if condition => body,
///     ...
///     else => body,                         // optional: when every branch is disabled
/// }
/// ```
///
/// Without `biased;` each call starts polling at a random branch, so no branch starves.
/// A branch whose `condition` is false, or whose output does not match `pattern`, is
/// disabled for the rest of this call; if all are disabled, `else` runs (and without
/// `else`, the macro panics). `break`, `continue` and `?` in a body act on the code
/// around the `select!`.
///
/// **Cancellation:** the branches not taken are dropped when the taken branch's body
/// starts. A ringleader op dropped in flight is cancelled: its buffer is held by the runtime
/// until the kernel's final CQE and then released, and a result that raced the cancel is
/// recycled (see docs/cancellation.md). What it already did in the kernel stays done: a
/// dropped read may have consumed bytes. Safe to drop and retry in a loop: `sync` channels'
/// `recv`, `time::sleep`, `signal::unix::Signal::recv`, and `next()` on the futures-io
/// `lines()` stream of a ringleader stream (a partial line stays in the stream; `read_line`
/// itself is *not* safe to drop); otherwise pin the future outside the loop and select on
/// `&mut fut`.
///
/// ```
/// use std::time::Duration;
/// use ringleader::sync::mpsc;
///
/// ringleader::block_on(async {
///     let (tx, mut rx) = mpsc::channel::<u32>(4);
///     ringleader::spawn(async move { tx.send(7).await.unwrap() }).detach();
///     let mut got = Vec::new();
///     loop {
///         ringleader::select! {
///             Some(v) = rx.recv() => got.push(v),
///             // The sleep is dropped (its timeout op cancelled) when a value arrives first.
///             _ = ringleader::time::sleep(Duration::from_millis(50)) => break,
///         }
///     }
///     assert_eq!(got, [7]);
/// });
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__private::select! { $($tokens)* }
    };
}

/// Run several futures concurrently on the current task and wait for all of them; the
/// outputs come back as a tuple. Tokio's `join!`.
///
/// The futures run interleaved on one task (no spawn, so they may borrow locals and be
/// `!Send`); to use other cores, [`spawn_on`](crate::spawn_on) and join the handles.
/// Nothing is dropped early.
///
/// ```
/// use std::time::Duration;
///
/// ringleader::block_on(async {
///     let (a, b) = ringleader::join!(
///         async { ringleader::time::sleep(Duration::from_millis(2)).await; 1 },
///         async { 2 },
///     );
///     assert_eq!((a, b), (1, 2));
/// });
/// ```
#[macro_export]
macro_rules! join {
    ($($tokens:tt)*) => {
        $crate::__private::join! { $($tokens)* }
    };
}

/// Like [`join!`], for futures returning `Result`: `Ok` with the tuple of values once all
/// succeed, or the first `Err`, at which point the other futures are dropped. Tokio's
/// `try_join!`.
///
/// **Cancellation:** on the first error every future still running is dropped, so their
/// in-flight ringleader ops are cancelled as described in docs/cancellation.md.
///
/// ```
/// use std::io;
///
/// ringleader::block_on(async {
///     let r: io::Result<(u8, u8)> = ringleader::try_join!(
///         async { Ok(1) },
///         async { Err(io::Error::other("second failed")) },
///     );
///     assert_eq!(r.unwrap_err().to_string(), "second failed");
/// });
/// ```
#[macro_export]
macro_rules! try_join {
    ($($tokens:tt)*) => {
        $crate::__private::try_join! { $($tokens)* }
    };
}

/// The macros' implementation, reached as `$crate::__private::…` so a program needs no
/// `tokio` dependency. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use tokio::{join, select, try_join};
}
