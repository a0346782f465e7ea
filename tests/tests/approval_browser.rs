//! An approver in a real browser: headless Chromium (Debian's package, driven over WebDriver by
//! chromedriver on 127.0.0.1) opens the link from the email, sees the page, presses Approve, and
//! the pipeline's approval is recorded. Screenshots are kept in `target/test-artifacts/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use integration_tests::approvals::ApprovalScenario;
use integration_tests::{unique, workspace_root};
use serde_json::json;
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// chromedriver on a free loopback port, and the profile folder Chromium gets.
struct Browser {
    _driver: Child,
    client: Client,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Self {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: tests/scripts/setup installs Debian's chromium and chromium-driver"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(unique("chromium-profile"));
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=900,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("cannot start headless Chromium: {e}"));
        Self {
            _driver: driver,
            client,
            profile,
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let folder = workspace_root().join("target/test-artifacts");
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join(name);
        std::fs::write(&path, self.client.screenshot().await.unwrap()).unwrap();
        path
    }

    async fn heading(&self) -> String {
        self.client
            .find(Locator::Css("h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn close(self) {
        self.client.close().await.unwrap();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approver_opens_the_link_in_chromium_presses_approve_and_the_approval_is_recorded() {
    let scenario = ApprovalScenario::new().await;
    scenario.deliver().await;
    let (approve, _) = scenario.links_of("alice@example.com").await;
    let browser = Browser::start().await;

    browser.client.goto(&approve).await.unwrap();

    assert_eq!(
        browser.heading().await,
        format!("Approve {}?", scenario.pipeline)
    );
    let page = browser.client.source().await.unwrap();
    assert!(page.contains("feat: one-click checkout"), "{page}");
    assert!(page.contains("alice@example.com"));
    let shot = browser.screenshot("approval-page.png").await;
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a real screenshot"
    );
    // Looking at the page decided nothing.
    assert_eq!(
        scenario.approval_state().await.status().unwrap().as_str(),
        "InProgress"
    );

    browser
        .client
        .find(Locator::Css("#comment"))
        .await
        .unwrap()
        .send_keys("Looks good on staging")
        .await
        .unwrap();
    browser
        .client
        .find(Locator::Css("#decide"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let waited = browser
        .client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath("//h1[contains(., 'thank you')]"))
        .await;
    if waited.is_err() {
        browser.screenshot("approval-failed.png").await;
        panic!(
            "no confirmation after pressing Approve; the browser shows: {}",
            browser.client.source().await.unwrap()
        );
    }

    assert_eq!(browser.heading().await, "Approved: thank you");
    browser.screenshot("approval-done.png").await;
    let decided = scenario.approval_state().await;
    assert_eq!(decided.status().unwrap().as_str(), "Succeeded");
    assert_eq!(
        decided.summary(),
        Some("Approved by alice@example.com via the email link: Looks good on staging")
    );
    assert_eq!(scenario.execution_status().await, "Succeeded");

    // Back and submit again: the browser replays the form, and the page says it is decided.
    browser.client.back().await.unwrap();
    browser.client.refresh().await.unwrap();
    assert_eq!(browser.heading().await, "Already decided");
    browser.close().await;
}
