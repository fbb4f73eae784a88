//! `#[ringleader::test]` runs async tests (on one core by default, on core 0 of N with
//! `cores = N`), keeps `#[should_panic]`, supports `?` and `return`; `#[ringleader::main]`
//! turns any async fn into a blocking one, arguments and return value included.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

#[ringleader::test]
async fn runs_an_async_body_with_ops_and_tasks() {
    ringleader::time::sleep(Duration::from_millis(1)).await;
    ringleader::ops::nop().await.unwrap();
    // `!Send` state is fine on one core.
    let hits = Rc::new(Cell::new(0));
    let h = {
        let hits = Rc::clone(&hits);
        ringleader::spawn(async move { hits.set(hits.get() + 1) })
    };
    h.await.unwrap();
    assert_eq!(hits.get(), 1);
    assert_eq!(ringleader::core_count(), 1);
}

#[ringleader::test(cores = 2)]
async fn cores_two_runs_the_body_on_core_zero_of_two() {
    assert_eq!(ringleader::current_core(), 0);
    assert_eq!(ringleader::core_count(), 2);
    let other = ringleader::spawn_on(1, || async { ringleader::current_core() });
    assert_eq!(other.await.unwrap(), 1);
}

#[ringleader::test]
async fn question_mark_and_early_return_work() -> std::io::Result<()> {
    let listener = ringleader::net::TcpListener::bind("127.0.0.1:0")?;
    if listener.local_addr()?.port() != 0 {
        return Ok(());
    }
    unreachable!("the kernel picks a non-zero port")
}

#[ringleader::test]
#[should_panic(expected = "boom on the core")]
async fn a_panic_fails_the_test() {
    ringleader::ops::nop().await.unwrap();
    panic!("boom on the core");
}

#[ringleader::test(cores = 2)]
#[should_panic(expected = "boom on core 0")]
async fn a_panic_on_a_multi_core_runtime_fails_the_test() {
    panic!("boom on core 0");
}

#[ringleader::main]
async fn add_after_a_sleep(a: u32, mut b: u32) -> u32 {
    ringleader::time::sleep(Duration::from_millis(1)).await;
    b += a;
    b
}

#[ringleader::main(cores = 2)]
async fn where_and_how_many(tag: String) -> (String, usize, usize) {
    (tag, ringleader::current_core(), ringleader::core_count())
}

fn three() -> usize {
    3
}

#[ringleader::main(cores = three())]
async fn core_count_from_an_expression() -> usize {
    ringleader::core_count()
}

#[test]
fn main_blocks_on_the_body_with_its_arguments() {
    assert_eq!(add_after_a_sleep(2, 40), 42);
    // A fresh runtime each call.
    assert_eq!(add_after_a_sleep(1, 1), 2);
}

#[test]
fn main_with_cores_runs_on_core_zero_and_returns_send_values() {
    assert_eq!(where_and_how_many("x".into()), ("x".into(), 0, 2));
    assert_eq!(core_count_from_an_expression(), 3);
}
