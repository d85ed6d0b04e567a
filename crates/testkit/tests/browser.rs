//! Proves the headless-browser harness: a real Chromium fills and submits a form served by a
//! tiny axum app on loopback, and takes a screenshot. Fails (never skips) when Chromium or
//! chromedriver are missing.

use axum::Router;
use axum::extract::Form;
use axum::response::Html;
use axum::routing::get;
use fantoccini::Locator;
use herald_testkit::browser::Browser;
use std::collections::HashMap;
use std::net::SocketAddr;

const FORM_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>form</title></head>
<body>
  <form method="post" action="/echo">
    <label>Name <input type="text" name="name" id="name"></label>
    <button type="submit" id="submit">Send</button>
  </form>
</body>
</html>"#;

async fn form_page() -> Html<&'static str> {
    Html(FORM_PAGE)
}

async fn echo(Form(fields): Form<HashMap<String, String>>) -> Html<String> {
    let name = fields.get("name").map(String::as_str).unwrap_or_default();
    // Enough escaping for this test's values.
    let name = name.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>echo</title></head>\
         <body><p id=\"echo\">{name}</p></body></html>"
    ))
}

async fn serve() -> SocketAddr {
    let app = Router::new().route("/", get(form_page)).route("/echo", axum::routing::post(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

#[tokio::test]
async fn chromium_fills_and_submits_a_form_and_takes_a_screenshot() {
    let addr = serve().await;
    let started = std::time::Instant::now();
    let Some(browser) = Browser::start_for_test("browser_fills_and_submits_a_form").await else { return };
    eprintln!("Browser::start took {:?}", started.elapsed());

    let c = &browser.client;
    c.goto(&format!("http://{addr}/")).await.unwrap();
    assert_eq!(c.title().await.unwrap(), "form");
    let input = c.find(Locator::Css("input[name=name]")).await.unwrap();
    input.send_keys("Grüße <herald> & co").await.unwrap();
    c.find(Locator::Css("#submit")).await.unwrap().click().await.unwrap();

    // The click starts a navigation: wait for the element of the page it leads to.
    let echoed = c.wait().for_element(Locator::Css("#echo")).await.unwrap();
    assert_eq!(echoed.text().await.unwrap(), "Grüße <herald> & co");
    assert_eq!(c.current_url().await.unwrap().path(), "/echo");

    // The narrow-screen size the UI checks use, then a screenshot.
    browser.set_window(360, 800).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("nested/dir/echo.png");
    browser.screenshot_to(&shot).await.unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {:?}", &png[..png.len().min(16)]);

    browser.close().await.expect("closing the browser");
}
