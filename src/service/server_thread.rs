//! A small HTTP server's thread: a current-thread tokio runtime on a thread of its own,
//! running one serving future until told to stop. The admin API and the web seed each run on
//! one; dropping the handle stops the future and joins the thread.

use std::future::Future;
use std::time::Duration;

use tokio::sync::oneshot;

/// A running server thread; dropping it stops the server and waits for the thread.
pub struct ServerThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Starts thread `name` running `serve(stopped)` on a runtime whose blocking pool has
    /// `blocking` threads named `blocking_name`; `stopped` resolves when the handle is dropped.
    pub fn spawn<F, Fut>(
        name: &str,
        blocking_name: &str,
        blocking: usize,
        serve: F,
    ) -> std::io::Result<ServerThread>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(blocking)
            .thread_name(blocking_name)
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(serve(stopped));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(ServerThread {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
