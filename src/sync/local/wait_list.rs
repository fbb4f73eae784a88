//! A FIFO of waiters that a waiter can leave from anywhere: the queue under every local
//! primitive.
//!
//! Entries live in a [`Slab`] and are threaded into a doubly linked list by index, so pushing,
//! popping either end and removing a cancelled waiter from the middle are all O(1), and a
//! warmed-up list allocates nothing. An entry stays in the slab after it is popped (unlinked)
//! until its owner removes it: that is how a future learns it was chosen (its entry is no
//! longer linked) and collects what the popper left in it (a permit count, a flag).
//!
//! Pure bookkeeping, no wakers run here: callers take the wakers out and wake them after
//! their `RefCell` borrow ends, so a waker can never re-enter a primitive mid-update.

use slab::Slab;

#[derive(Debug)]
struct Node<T> {
    value: T,
    prev: Option<usize>,
    next: Option<usize>,
    linked: bool,
}

/// A FIFO of `T`s keyed by slab index.
#[derive(Debug)]
pub(crate) struct WaitList<T> {
    nodes: Slab<Node<T>>,
    head: Option<usize>,
    tail: Option<usize>,
    linked: usize,
}

impl<T> WaitList<T> {
    pub(crate) const fn new() -> Self {
        WaitList {
            nodes: Slab::new(),
            head: None,
            tail: None,
            linked: 0,
        }
    }

    /// Whether no entry is queued (popped entries that are not yet removed do not count).
    pub(crate) fn is_empty(&self) -> bool {
        self.linked == 0
    }

    /// Queue `value` at the back; the key names it until [`remove`](Self::remove).
    pub(crate) fn push_back(&mut self, value: T) -> usize {
        let key = self.nodes.insert(Node {
            value,
            prev: self.tail,
            next: None,
            linked: true,
        });
        match self.tail {
            Some(t) => self.nodes[t].next = Some(key),
            None => self.head = Some(key),
        }
        self.tail = Some(key);
        self.linked += 1;
        key
    }

    /// The first queued entry.
    pub(crate) fn front(&self) -> Option<usize> {
        self.head
    }

    /// Unlink the first entry; it stays readable by its key until removed.
    pub(crate) fn pop_front(&mut self) -> Option<usize> {
        let key = self.head?;
        self.unlink(key);
        Some(key)
    }

    /// Unlink the last entry; it stays readable by its key until removed.
    pub(crate) fn pop_back(&mut self) -> Option<usize> {
        let key = self.tail?;
        self.unlink(key);
        Some(key)
    }

    /// Whether `key` is still queued (not popped).
    pub(crate) fn is_linked(&self, key: usize) -> bool {
        self.nodes[key].linked
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> &mut T {
        &mut self.nodes[key].value
    }

    /// Take `key` out for good, unlinking it first if it is still queued.
    pub(crate) fn remove(&mut self, key: usize) -> T {
        self.unlink(key);
        self.nodes.remove(key).value
    }

    /// Unlink `key` if it is queued; a no-op for a popped entry.
    pub(crate) fn unlink(&mut self, key: usize) {
        let node = &mut self.nodes[key];
        if !node.linked {
            return;
        }
        node.linked = false;
        let (prev, next) = (node.prev.take(), node.next.take());
        match prev {
            Some(p) => self.nodes[p].next = next,
            None => self.head = next,
        }
        match next {
            Some(n) => self.nodes[n].prev = prev,
            None => self.tail = prev,
        }
        self.linked -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::WaitList;

    fn drain(l: &mut WaitList<u32>) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(k) = l.pop_front() {
            out.push(l.remove(k));
        }
        out
    }

    #[test]
    fn fifo_with_removal_from_anywhere() {
        let mut l = WaitList::new();
        let keys: Vec<usize> = (0..6).map(|i| l.push_back(i)).collect();
        assert_eq!(l.remove(keys[0]), 0); // head
        assert_eq!(l.remove(keys[3]), 3); // middle
        assert_eq!(l.remove(keys[5]), 5); // tail
        let k6 = l.push_back(6);
        assert!(l.is_linked(k6));
        assert_eq!(drain(&mut l), vec![1, 2, 4, 6]);
        assert!(l.is_empty());
        assert_eq!(l.front(), None);
    }

    #[test]
    fn popped_entries_stay_until_removed() {
        let mut l = WaitList::new();
        let a = l.push_back(1);
        let b = l.push_back(2);
        assert_eq!(l.pop_back(), Some(b));
        assert!(!l.is_linked(b));
        *l.get_mut(b) = 20;
        assert_eq!(l.pop_front(), Some(a));
        assert!(l.is_empty());
        l.unlink(a); // no-op on a popped entry
        assert_eq!(l.remove(b), 20);
        assert_eq!(l.remove(a), 1);
        let c = l.push_back(3);
        assert_eq!(l.front(), Some(c));
    }
}
