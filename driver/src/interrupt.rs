//! A request to wind a run down early (Ctrl-C): looping users stop after their current
//! attempt, in-flight requests finish, and the audit still runs on everything that happened.

use tokio::sync::watch;

/// The receiving side; cheap to clone. [`Interrupt::never`] for runs nobody interrupts.
#[derive(Debug, Clone)]
pub struct Interrupt(watch::Receiver<bool>);

/// The sending side.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

impl Interrupt {
    /// A trigger and the interrupt it fires.
    pub fn new() -> (Trigger, Interrupt) {
        let (tx, rx) = watch::channel(false);
        (Trigger(tx), Interrupt(rx))
    }

    /// An interrupt that never fires.
    pub fn never() -> Interrupt {
        Interrupt(watch::Sender::new(false).subscribe())
    }

    /// Whether it has fired.
    pub fn fired(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once it fires (never, if its trigger is gone unfired).
    pub async fn wait(mut self) {
        if self.0.wait_for(|fired| *fired).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn fires_once_triggered() {
        let (trigger, interrupt) = Interrupt::new();
        assert!(!interrupt.fired());
        let waiting = tokio::spawn(interrupt.clone().wait());
        trigger.fire();
        waiting.await.unwrap();
        assert!(interrupt.fired());
        let never = Interrupt::never();
        assert!(
            tokio::time::timeout(Duration::from_secs(60), never.wait())
                .await
                .is_err()
        );
    }
}
