//! Progress of long operations on stderr: a line whenever the state changes, a final
//! line with the elapsed time, and a timeout error that says where it got stuck.

use std::time::{Duration, Instant};

use super::CliError;

const POLL: Duration = Duration::from_millis(200);

/// What a poll learned: finished, or still waiting with a description of the state.
pub enum Poll {
    Done,
    Waiting(String),
}

pub struct Progress {
    what: String,
    start: Instant,
    timeout: Duration,
    last: String,
}

impl Progress {
    pub fn new(what: impl Into<String>, timeout: Duration) -> Progress {
        Progress {
            what: what.into(),
            start: Instant::now(),
            timeout,
            last: String::new(),
        }
    }

    /// Records a poll. `Ok(true)` when done; an error once the deadline has passed.
    pub fn update(&mut self, poll: Poll) -> Result<bool, CliError> {
        match poll {
            Poll::Done => {
                // Only a wait that was shown gets a closing line.
                if self.last.is_empty() {
                    return Ok(true);
                }
                eprintln!(
                    "{}: done in {:.1} s",
                    self.what,
                    self.start.elapsed().as_secs_f64()
                );
                Ok(true)
            }
            Poll::Waiting(state) => {
                if self.start.elapsed() >= self.timeout {
                    return Err(CliError::Timeout {
                        what: self.what.clone(),
                        seconds: self.timeout.as_secs(),
                        state,
                    });
                }
                if state != self.last {
                    eprintln!("{}: {state}", self.what);
                    self.last = state;
                }
                Ok(false)
            }
        }
    }

    /// Waits before the next poll.
    pub async fn pause(&self) {
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_at_once_and_timeout_names_the_last_state() {
        let mut p = Progress::new("waiting", Duration::from_secs(60));
        assert!(!p.update(Poll::Waiting("1/3".into())).unwrap());
        assert!(p.update(Poll::Done).unwrap());
        let mut p = Progress::new("waiting for t", Duration::ZERO);
        let err = p
            .update(Poll::Waiting("2/3 partitions".into()))
            .unwrap_err();
        assert!(err.to_string().contains("waiting for t") && err.to_string().contains("2/3"));
    }
}
