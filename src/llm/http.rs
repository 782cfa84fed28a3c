//! The HTTP client every model call goes through.
//!
//! Two paths, chosen per call by the same proxy rules reqwest applies
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`, as curl reads
//! them):
//!
//! - **direct** — hyper-util's pooled HTTP/1.1 client over rustls with the
//!   system's root certificates, when no proxy applies to the provider's
//!   URL. This is the path every answer of a busy gateway takes, and it
//!   costs about half the CPU of the same call through reqwest: no
//!   redirect, retry or cookie layers (a model API answers where it is
//!   asked; [`super::with_retries`] does Pincer's retrying), and the URL is
//!   parsed once at start-up, not again from every response.
//! - **proxied** — reqwest, which speaks to HTTP proxies and tunnels
//!   through them, when one applies.
//!
//! Both bound the whole exchange, body included, by the provider's
//! `timeout`, send the same headers and read at most [`MAX_BODY`] bytes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::ProviderError;

/// The largest response body read: an answer is kilobytes, a batch of
/// embeddings a few megabytes.
pub const MAX_BODY: usize = 32 << 20;

/// How long an idle pooled connection is kept (reqwest's default).
const POOL_IDLE: Duration = Duration::from_secs(90);

const USER_AGENT: &str = concat!("pincer/", env!("CARGO_PKG_VERSION"));

type Direct = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The model client: cheap to clone (its pools are shared).
#[derive(Clone)]
pub struct ModelHttp {
    direct: Direct,
    proxies: Arc<Matcher>,
    proxied: reqwest::Client,
}

impl fmt::Debug for ModelHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelHttp").field("proxies", &self.proxies).finish_non_exhaustive()
    }
}

impl ModelHttp {
    /// The client for this process: proxies as the environment names them.
    pub fn from_env() -> anyhow::Result<ModelHttp> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let proxied = reqwest::Client::builder().user_agent(USER_AGENT).build()?;
        Ok(ModelHttp::with_proxies(Matcher::from_system(), proxied))
    }

    /// A client whose proxy rules are `proxies`; `proxied` must apply the
    /// same rules (it is the client used when they name a proxy).
    pub fn with_proxies(proxies: Matcher, proxied: reqwest::Client) -> ModelHttp {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let https = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
            Ok(b) => b.https_or_http().enable_http1().build(),
            Err(e) => {
                // Plain http (a model on this machine or this network) still
                // works; https fails at its first call, saying why.
                tracing::warn!(error = %e, "no system root certificates: https model calls will fail");
                let tls = rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build()
            }
        };
        let direct = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(https);
        ModelHttp { direct, proxies: Arc::new(proxies), proxied }
    }

    /// Whether calls to `url` go through a proxy.
    pub fn proxied(&self, url: &Uri) -> bool {
        self.proxies.intercept(url).is_some()
    }

    /// POSTs the JSON `body` to `url` with `headers` (API keys among them:
    /// they are marked sensitive) and returns the response body. The whole
    /// exchange must end within `timeout`; a status other than 2xx is an
    /// error carrying its `Retry-After`.
    pub async fn post_json(
        &self,
        url: &Uri,
        headers: &[(HeaderName, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, ProviderError> {
        let mut map = HeaderMap::with_capacity(headers.len() + 2);
        map.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| ProviderError::Transport(format!("the {name} header is not a valid header value")))?;
            value.set_sensitive(true);
            map.insert(name.clone(), value);
        }
        if self.proxied(url) {
            return self.post_proxied(url, map, body, timeout).await;
        }
        map.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        tokio::time::timeout(timeout, self.post_direct(url, map, body)).await.map_err(|_| ProviderError::Timeout)?
    }

    async fn post_direct(&self, url: &Uri, headers: HeaderMap, body: Vec<u8>) -> Result<Bytes, ProviderError> {
        let mut req = Request::new(Full::new(Bytes::from(body)));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = url.clone();
        *req.headers_mut() = headers;
        let resp = self.direct.request(req).await.map_err(|e| ProviderError::Transport(chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ProviderError::Status { status: status.as_u16(), retry_after: retry_after(resp.headers()) });
        }
        match Limited::new(resp.into_body(), MAX_BODY).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err(ProviderError::Malformed(format!("the answer is longer than {MAX_BODY} bytes")))
            }
            Err(e) => Err(ProviderError::Transport(chain(&*e))),
        }
    }

    async fn post_proxied(
        &self,
        url: &Uri,
        headers: HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, ProviderError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() { ProviderError::Timeout } else { ProviderError::Transport(chain(&e.without_url())) }
        };
        let req = self.proxied.post(url.to_string()).timeout(timeout).headers(headers).body(body);
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ProviderError::Status { status: status.as_u16(), retry_after: retry_after(resp.headers()) });
        }
        let mut read = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if read.len() + chunk.len() > MAX_BODY {
                return Err(ProviderError::Malformed(format!("the answer is longer than {MAX_BODY} bytes")));
            }
            read.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(read))
    }
}

/// Reads `Retry-After` in seconds (the HTTP-date form is not used by model APIs).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<f64>().ok().and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// An error and its causes, `outer: inner: …` (hyper-util's own message is
/// only "client error (Connect)"; the cause says what happened).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s = s.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = source.and_then(|x| x.source());
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::Router;
    use axum::extract::{Request as AxumRequest, State};
    use axum::response::IntoResponse;

    use super::*;

    /// What the test server saw of each request.
    #[derive(Debug, Clone)]
    struct Seen {
        target: String,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    type Log = Arc<Mutex<Vec<Seen>>>;

    /// A server on 127.0.0.1 that records each request and answers with
    /// `reply(path)`; it also serves as an HTTP proxy (absolute-form
    /// targets are recorded as sent).
    async fn serve(reply: fn(&str) -> axum::response::Response) -> (String, Log) {
        let log: Log = Arc::default();
        let app = Router::new()
            .fallback(move |State(log): State<Log>, req: AxumRequest| async move {
                let target = req.uri().to_string();
                let path = req.uri().path().to_string();
                let headers = req.headers().clone();
                let body = axum::body::to_bytes(req.into_body(), usize::MAX).await.unwrap_or_default().to_vec();
                log.lock().unwrap().push(Seen { target, headers, body });
                reply(&path)
            })
            .with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), log)
    }

    fn answer(path: &str) -> axum::response::Response {
        match path {
            "/slow" => axum::response::Response::builder().status(200).body(axum::body::Body::from_stream(
                futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok::<_, std::io::Error>(Bytes::from_static(b"{}"))
                }),
            )),
            "/busy" => axum::response::Response::builder()
                .status(429)
                .header("retry-after", "1.5")
                .body(axum::body::Body::empty()),
            "/huge" => {
                axum::response::Response::builder().status(200).body(axum::body::Body::from(vec![b' '; MAX_BODY + 1]))
            }
            _ => return (axum::http::StatusCode::OK, r#"{"ok":true}"#).into_response(),
        }
        .unwrap()
    }

    /// reqwest's client, through `proxy` if given.
    fn reqwest(proxy: Option<&str>) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder().no_proxy();
        match proxy {
            Some(p) => builder.proxy(reqwest::Proxy::http(p).unwrap()),
            None => builder,
        }
        .build()
        .unwrap()
    }

    fn direct() -> ModelHttp {
        ModelHttp::with_proxies(Matcher::builder().build(), reqwest(None))
    }

    async fn post(http: &ModelHttp, url: &str) -> Result<Bytes, ProviderError> {
        let url: Uri = url.parse().unwrap();
        http.post_json(
            &url,
            &[(header::AUTHORIZATION, "Bearer sk-test".to_string())],
            b"{\"q\":1}".to_vec(),
            Duration::from_secs(2),
        )
        .await
    }

    #[tokio::test]
    async fn a_direct_call_sends_the_body_and_headers_and_reads_the_answer() {
        let (base, log) = serve(answer).await;
        let http = direct();
        assert!(!http.proxied(&base.parse().unwrap()));
        let body = post(&http, &format!("{base}/v1/chat/completions")).await.unwrap();
        assert_eq!(&body[..], br#"{"ok":true}"#);
        let seen = log.lock().unwrap()[0].clone();
        assert_eq!(seen.target, "/v1/chat/completions");
        assert_eq!(seen.body, b"{\"q\":1}");
        assert_eq!(seen.headers["authorization"], "Bearer sk-test");
        assert_eq!(seen.headers["content-type"], "application/json");
        assert!(seen.headers["user-agent"].to_str().unwrap().starts_with("pincer/"));
        assert!(seen.headers["host"].to_str().unwrap().starts_with("127.0.0.1:"));
    }

    #[tokio::test]
    async fn statuses_timeouts_refusals_and_oversized_answers_are_told_apart() {
        let (base, _log) = serve(answer).await;
        let http = direct();
        assert_eq!(
            post(&http, &format!("{base}/busy")).await,
            Err(ProviderError::Status { status: 429, retry_after: Some(Duration::from_millis(1500)) })
        );
        assert_eq!(post(&http, &format!("{base}/slow")).await, Err(ProviderError::Timeout));
        assert!(
            matches!(post(&http, &format!("{base}/huge")).await, Err(ProviderError::Malformed(m)) if m.contains("longer"))
        );
        // A port nobody listens on: the cause is in the message.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        match post(&http, &format!("http://{closed}/x")).await {
            Err(ProviderError::Transport(m)) => assert!(m.to_lowercase().contains("refused"), "{m}"),
            other => panic!("{other:?}"),
        }
        let bad = http
            .post_json(
                &base.parse().unwrap(),
                &[(header::AUTHORIZATION, "Bearer a\nb".to_string())],
                vec![],
                Duration::from_secs(1),
            )
            .await;
        assert!(matches!(bad, Err(ProviderError::Transport(m)) if m.contains("authorization")));
    }

    #[tokio::test]
    async fn a_proxy_the_rules_name_is_used_and_no_proxy_exempts_a_host() {
        let (proxy, proxy_log) = serve(answer).await;
        let (target, target_log) = serve(answer).await;
        // The target by name, so that NO_PROXY can name it apart from the proxy.
        let target = target.replace("127.0.0.1", "localhost");
        let proxied = reqwest(Some(&proxy));
        let http = ModelHttp::with_proxies(Matcher::builder().http(proxy.clone()).build(), proxied.clone());
        assert!(http.proxied(&target.parse().unwrap()));
        let body = post(&http, &format!("{target}/v1/messages")).await.unwrap();
        assert_eq!(&body[..], br#"{"ok":true}"#);
        let seen = proxy_log.lock().unwrap()[0].clone();
        assert_eq!(seen.target, format!("{target}/v1/messages"), "the proxy is asked for the absolute URL");
        assert_eq!(seen.headers["authorization"], "Bearer sk-test");
        assert_eq!(seen.body, b"{\"q\":1}");
        assert!(target_log.lock().unwrap().is_empty());
        assert_eq!(
            post(&http, &format!("{target}/busy")).await,
            Err(ProviderError::Status { status: 429, retry_after: Some(Duration::from_millis(1500)) })
        );

        let exempt = ModelHttp::with_proxies(Matcher::builder().http(proxy).no("localhost").build(), proxied);
        assert!(!exempt.proxied(&target.parse().unwrap()));
        post(&exempt, &format!("{target}/v1/messages")).await.unwrap();
        assert_eq!(target_log.lock().unwrap().len(), 1);
        assert_eq!(proxy_log.lock().unwrap().len(), 2);
    }

    #[derive(Debug)]
    struct Wrapped(&'static str, Option<Box<Wrapped>>);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|w| w as _)
        }
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        let refused = Wrapped("connection refused", None);
        let connect = Wrapped("tcp connect error: connection refused", Some(Box::new(refused)));
        let outer = Wrapped("client error (Connect)", Some(Box::new(connect)));
        assert_eq!(chain(&outer), "client error (Connect): tcp connect error: connection refused");
        assert_eq!(chain(&Wrapped("alone", None)), "alone");
    }
}
