//! A provider stand-in for tests that need answers the simulator does not give: an
//! HTTP/1 server (hyper) on a runtime of its own, every request handed to one function.

use std::future::Future;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub struct StandIn {
    pub addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl StandIn {
    /// Serves `handle` on a free loopback port, keep-alive connections included,
    /// until dropped.
    pub fn start<F, Fut>(handle: F) -> StandIn
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("stand-in runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let answer = handle(req);
                        async move { Ok::<_, std::convert::Infallible>(answer.await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StandIn {
            addr,
            _runtime: runtime,
        }
    }

    /// The stand-in as `api.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/otp", self.addr)
    }
}
