//! A test's HTTP server on a thread of its own (a current-thread runtime), so the synchronous
//! tests can run it beside the agent process.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Accepts on a loopback port and hands each connection to `conn` (as its own task) until
/// `stop` is set, which is checked at least every 100 ms. Returns the address and the thread.
pub fn serve_in_thread<F, Fut>(stop: Arc<AtomicBool>, conn: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok((s, _))) =
                    tokio::time::timeout(Duration::from_millis(100), l.accept()).await
                else {
                    continue;
                };
                tokio::spawn(conn(s));
            }
        });
    });
    (addr, thread)
}

/// Serves one connection as HTTP/1.1, answering every request with `answer`.
pub async fn http1_conn<I, F, Fut, B>(io: I, answer: F)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let svc = service_fn(move |req| {
        let res = answer(req);
        async move { Ok::<_, Infallible>(res.await) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}
