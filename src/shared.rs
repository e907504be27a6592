//! Work shared between the calling thread and helper threads, each taking the next item no thread
//! has taken yet.
//!
//! The helpers are detached, and the calling thread waits only for the items a helper took: on a
//! virtual machine a new thread may start milliseconds late (the scheduler leaving it behind the
//! running one), and a late helper then finds the items all taken instead of being waited for, as
//! a scoped thread's join would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

/// `work` applied to each of `items`, the results in the items' order, by this thread and up to
/// `helpers` more.
pub fn each<T, R>(items: Vec<T>, helpers: usize, work: fn(&T) -> R) -> Vec<R>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
{
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let (sender, receiver) = mpsc::channel();
    for _ in 0..helpers.min(items.len().saturating_sub(1)) {
        let (items, next, sender) = (Arc::clone(&items), Arc::clone(&next), sender.clone());
        // Without a thread (the system refused one), this one does the work.
        let _ = std::thread::Builder::new().spawn(move || take_each(&items, &next, work, &sender));
    }
    take_each(&items, &next, work, &sender);
    drop(sender);
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    for _ in 0..items.len() {
        // Every sender gone before every result came: a helper panicked on an item, which is
        // done again below (and panics here, with its message).
        let Ok((index, result)) = receiver.recv() else {
            break;
        };
        results[index] = Some(result);
    }
    results
        .into_iter()
        .zip(items.iter())
        .map(|(result, item)| result.unwrap_or_else(|| work(item)))
        .collect()
}

/// Takes items until none is left, each result sent with the item's index.
fn take_each<T, R>(
    items: &[T],
    next: &AtomicUsize,
    work: fn(&T) -> R,
    done: &mpsc::Sender<(usize, R)>,
) {
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(index) else {
            return;
        };
        if done.send((index, work(item))).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_worked_once_and_the_results_keep_their_order() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let items: Vec<u64> = (0..500).collect();
        let results = each(items, 3, |n| {
            CALLS.fetch_add(1, Ordering::Relaxed);
            n * n
        });
        assert_eq!(results, (0..500).map(|n| n * n).collect::<Vec<u64>>());
        assert_eq!(CALLS.load(Ordering::Relaxed), 500);
        assert_eq!(each(Vec::<u64>::new(), 1, |n| *n), Vec::<u64>::new());
    }
}
