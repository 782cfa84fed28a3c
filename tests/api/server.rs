//! The real HTTP server on port 0.

use crate::helpers::TestApp;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let t = TestApp::spawn().await;
    t.say("bob@acme.com", "console:#oncall", "/workspace").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = pincer::server::Server::build(t.app.clone(), listener, true);
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let get = |p: &str| http.get(format!("http://{addr}{p}")).send();
    let r = get("/healthz").await.unwrap();
    assert_eq!(r.status(), 200);
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("pincer_events_total 1"), "{metrics}");
    assert_eq!(get("/nope").await.unwrap().status(), 404);
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
    t.cleanup().await;
}
