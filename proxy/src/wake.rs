//! Wake-up filtering for a connection task's side futures.
//!
//! A connection task wakes for every read and write of its connection, while its drain watcher
//! and idle timer are ready once in its lifetime, if ever. `select!` polls them on every wake-up
//! anyway, and re-polling a waiting drain watcher takes the lock of the waiter list that every
//! connection's watcher shares (tokio's `Notify`): a cost per wake-up, and a lock all workers
//! would contend on. [`OnOwnWake`] polls its future only after that future's own waker fired.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// Set by the inner future's waker; forwards the wake-up to the task.
#[derive(Debug)]
struct Signal {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

pin_project_lite::pin_project! {
    /// A future polled on its first poll and then only after its own waker fired.
    #[derive(Debug)]
    pub struct OnOwnWake<F> {
        #[pin]
        inner: F,
        signal: Arc<Signal>,
        waker: Waker,
    }
}

impl<F: Future> OnOwnWake<F> {
    /// Wrap `inner` (one allocation, for its waker).
    pub fn new(inner: F) -> Self {
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            inner,
            waker: Waker::from(signal.clone()),
            signal,
        }
    }
}

impl<F: Future> Future for OnOwnWake<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Registered before the flag is read: a wake-up between the two still reaches the task.
        this.signal.task.register(cx.waker());
        if !this.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner.poll(&mut Context::from_waker(this.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Counts its polls; ready once `open` is set, woken through the waker it was last given.
    struct Gate {
        open: Arc<AtomicBool>,
        waker: Arc<std::sync::Mutex<Option<Waker>>>,
        polls: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.open.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn polled_only_when_its_own_waker_fired() {
        let open = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(std::sync::Mutex::new(None::<Waker>));
        let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gate = OnOwnWake::new(Gate {
            open: open.clone(),
            waker: waker.clone(),
            polls: polls.clone(),
        });
        let mut gate = std::pin::pin!(gate);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                tx.send(()).unwrap();
            }
        });
        let mut other_wakes = 0;
        // The task sleeps and is woken five times by something else: the gate is polled at
        // every turn, its inner future once, at first.
        while other_wakes < 5 {
            tokio::select! {
                biased;
                () = &mut gate => unreachable!("the gate is closed"),
                Some(()) = rx.recv() => other_wakes += 1,
            }
        }
        assert_eq!(other_wakes, 5);
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        // Its own wake-up gets it polled, and reaches the task.
        open.store(true, Ordering::SeqCst);
        let inner_waker = waker.lock().unwrap().clone().unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            inner_waker.wake();
        });
        tokio::time::timeout(Duration::from_secs(5), gate)
            .await
            .expect("the wake-up did not reach the task");
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
