//! Acceptance (c): with the pool exhausted, twice its size of concurrent `lease()` calls all
//! complete as leases are released, in FIFO order; `try_lease` returns `None` while empty.
//! Also: a granted but abandoned lease future passes its slot on; size classes pick the
//! smallest fitting slot; an impossible size is an error, not a hang.

use std::cell::RefCell;
use std::rc::Rc;

use ringleader::buf::FixedPool;

const SLOTS: usize = 4;

#[test]
fn twice_the_pool_of_waiters_complete_in_fifo_order() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, SLOTS).unwrap();
        let mut mine: Vec<_> = (0..SLOTS).map(|_| pool.try_lease(4096).unwrap()).collect();
        assert!(
            pool.try_lease(1).is_none(),
            "try_lease must not wait or overcommit"
        );
        assert_eq!(pool.available(), 0);

        let order = Rc::new(RefCell::new(Vec::new()));
        let in_use = Rc::new(RefCell::new((0usize, 0usize))); // (now, max)
        let tasks: Vec<_> = (0..2 * SLOTS)
            .map(|i| {
                let (pool, order, in_use) = (pool.clone(), order.clone(), in_use.clone());
                ringleader::spawn(async move {
                    let lease = pool.lease(100 + i).await.unwrap();
                    order.borrow_mut().push(i);
                    {
                        let mut u = in_use.borrow_mut();
                        u.0 += 1;
                        u.1 = u.1.max(u.0);
                    }
                    for _ in 0..=(i % 3) {
                        ringleader::yield_now().await;
                    }
                    in_use.borrow_mut().0 -= 1;
                    drop(lease);
                })
            })
            .collect();
        ringleader::yield_now().await;
        assert_eq!(
            pool.waiting(),
            2 * SLOTS,
            "every lease() waits on an empty pool"
        );
        assert!(order.borrow().is_empty());
        assert!(pool.try_lease(1).is_none());

        // Release ours one at a time; each goes to the oldest waiter.
        while let Some(l) = mine.pop() {
            drop(l);
            ringleader::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.borrow(), (0..2 * SLOTS).collect::<Vec<_>>(), "FIFO");
        assert!(in_use.borrow().1 <= SLOTS, "never more leases than slots");
        assert_eq!(pool.available(), SLOTS);
        assert_eq!(pool.waiting(), 0);
    });
}

#[test]
fn abandoned_granted_waiter_passes_the_slot_on() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let only = pool.try_lease(10).unwrap();
        let mut first = Box::pin(pool.lease(10));
        let mut second = Box::pin(pool.lease(10));
        assert!(futures::poll!(first.as_mut()).is_pending());
        assert!(futures::poll!(second.as_mut()).is_pending());
        drop(only); // granted to `first`, which never takes it
        drop(first);
        assert_eq!(pool.waiting(), 1);
        let l = second.await.unwrap();
        assert_eq!(l.capacity(), 10);
        drop(l);
        assert_eq!(pool.available(), 1);
    });
}

#[test]
fn classes_pick_the_smallest_fit_and_oversize_is_an_error() {
    ringleader::block_on(async {
        let pool = FixedPool::builder()
            .class(65536, 1)
            .class(4096, 2)
            .build()
            .unwrap();
        assert_eq!(pool.classes(), vec![(4096, 2), (65536, 1)]);
        assert_eq!(pool.max_lease(), 65536);
        let big = pool.lease(10_000).await.unwrap();
        assert_eq!(big.capacity(), 10_000);
        // The big class is empty: a big request waits even though small slots are free...
        let mut wait_big = Box::pin(pool.lease(5000));
        assert!(futures::poll!(wait_big.as_mut()).is_pending());
        // ...and small requests are served from the small class meanwhile.
        let small = pool.lease(4096).await.unwrap();
        assert_ne!(small.buf_index(), big.buf_index());
        let big_index = big.buf_index();
        drop(big);
        let again = wait_big.await.unwrap();
        assert_eq!(again.buf_index(), big_index);
        let err = pool.lease(65537).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(pool.try_lease(65537).is_none());
    });
}

#[test]
fn a_lease_ref_keeps_the_slot_after_the_lease_ends() {
    ringleader::block_on(async {
        let pool = FixedPool::new(4096, 1).unwrap();
        let l = pool.lease(4096).await.unwrap();
        let r = l.keep_alive();
        assert_eq!(r.count(), 2);
        drop(l);
        assert_eq!(pool.available(), 0, "a LeaseRef still names the slot");
        assert!(pool.try_lease(1).is_none());
        let r2 = r.clone();
        drop(r);
        assert_eq!(pool.available(), 0);
        drop(r2);
        assert_eq!(pool.available(), 1);
    });
}

#[test]
fn two_pools_share_the_ring_table_without_overlap() {
    ringleader::block_on(async {
        let a = FixedPool::new(4096, 3).unwrap();
        let b = FixedPool::new(8192, 2).unwrap();
        let ia: Vec<_> = (0..3).map(|_| a.try_lease(1).unwrap()).collect();
        let ib: Vec<_> = (0..2).map(|_| b.try_lease(1).unwrap()).collect();
        let mut all: Vec<u16> = ia
            .iter()
            .chain(&ib)
            .map(|l| l.buf_index().unwrap())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 5, "buffer indices of two pools overlap");
        drop((ia, ib));
        // Dropping a pool gives its table range back for the next one.
        let first_a = a.first_buf_index();
        drop(a);
        let c = FixedPool::new(4096, 3).unwrap();
        assert_eq!(c.first_buf_index(), first_a);
    });
}
