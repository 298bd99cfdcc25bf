//! Progress bars for long local work (hashing), drawn on stderr only when it is a terminal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Runs `work` on a scoped thread while a bar follows `progress` (bytes done of `total`).
/// The bar is hidden when stderr is not a terminal (indicatif checks) or `quiet` is set.
pub fn with_byte_progress<T: Send>(
    label: &str,
    total: u64,
    quiet: bool,
    work: impl FnOnce(&AtomicU64) -> T + Send,
) -> T {
    let progress = AtomicU64::new(0);
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(label.to_owned());
    let result = std::thread::scope(|scope| {
        // The worker says when it is done, so the caller does not wait out a redraw interval.
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let progress = &progress;
        let handle = scope.spawn(move || {
            let result = work(progress);
            let _ = done.send(());
            result
        });
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            finished.recv_timeout(Duration::from_millis(100))
        {
            bar.set_position(progress.load(Ordering::Relaxed));
        }
        handle.join().expect("worker thread panicked")
    });
    bar.finish_and_clear();
    result
}
