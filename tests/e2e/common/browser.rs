//! A real browser for the web tests: Debian's `chromium`, headless, driven over WebDriver
//! (fantoccini) through a `chromedriver` this helper starts on a port of its own and stops when
//! the test ends. Screenshots go to `<target>/screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::{free_port, wait_for};

/// The window sizes the pages are tested at: a laptop and a phone.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    pub client: Client,
    /// The site, `http://127.0.0.1:<port>`.
    pub base: String,
    driver_url: String,
    driver: Child,
}

impl Browser {
    /// A headless Chromium at `size` looking at `base`.
    pub async fn start(base: &str, size: (u32, u32)) -> Self {
        let port = free_port();
        let driver = Command::new(
            std::env::var("MUSTER_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()),
        )
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver (apt-get install chromium chromium-driver; scripts/test.sh does)");
        let driver_url = format!("http://127.0.0.1:{port}");
        let status = format!("{driver_url}/status");
        wait_for("chromedriver to answer", Duration::from_secs(30), || {
            let status = status.clone();
            async move {
                reqwest::get(&status)
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
        let binary =
            std::env::var("MUSTER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--lang=en-US", "--force-device-scale-factor=1",
                    format!("--window-size={},{}", size.0, size.1),
                ],
                "prefs": { "intl.accept_languages": "en-US,en" },
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!("capabilities are an object")
        };
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .expect("a chromium session");
        let browser = Self {
            client,
            base: base.to_owned(),
            driver_url,
            driver,
        };
        browser.resize(size).await;
        browser
    }

    /// The window's viewport at `size` (the window is a little larger than its viewport).
    pub async fn resize(&self, size: (u32, u32)) {
        self.client.set_window_size(size.0, size.1).await.unwrap();
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];")
            .await;
        let (w, h) = (
            inner[0].as_u64().unwrap() as u32,
            inner[1].as_u64().unwrap() as u32,
        );
        let (dw, dh) = (size.0.saturating_sub(w), size.1.saturating_sub(h));
        if dw > 0 || dh > 0 {
            self.client
                .set_window_size(size.0 + dw, size.1 + dh)
                .await
                .unwrap();
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    }

    /// The path of the page shown.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// Signs in on the form with `secret` (an admin token or an API key).
    pub async fn sign_in(&self, secret: &str) {
        self.goto("/sign-in").await;
        let field = self.client.find(Locator::Id("secret")).await.unwrap();
        field.send_keys(secret).await.unwrap();
        self.find("form[action='/sign-in'] button[type=submit]")
            .await
            .click()
            .await
            .unwrap();
        self.wait_until(
            "the overview after sign-in",
            "return location.pathname === '/' && !!document.querySelector('#board');",
        )
        .await;
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    /// Clicks the element `css` selects (a link, a button).
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// Waits (up to 10 s) until `script` returns true.
    pub async fn wait_until(&self, what: &str, script: &str) {
        wait_for(what, Duration::from_secs(10), || async move {
            self.client
                .execute(script, vec![])
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .filter(|b| *b)
        })
        .await;
    }

    /// Switches the pages to `lang` (`en`, `ko`) with the header's switch, and waits for the
    /// page drawn in it.
    pub async fn switch_language(&self, lang: &str) {
        self.find(&format!("form.lang button[value={lang}]"))
            .await
            .click()
            .await
            .unwrap();
        self.wait_until(
            &format!("the page in {lang}"),
            &format!("return document.documentElement.lang === '{lang}';"),
        )
        .await;
    }

    /// Waits until the page's live stream is connected (its indicator says so).
    pub async fn wait_live(&self) {
        self.wait_until(
            "the live stream to connect",
            "return !!document.querySelector('.live-state[data-state=on]');",
        )
        .await;
    }

    /// Presses Tab once.
    pub async fn tab(&self) {
        let tab: char = Key::Tab.into();
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: tab })
            .then(KeyAction::Up { value: tab });
        self.client.perform_actions(keys).await.unwrap();
    }

    /// Saves a screenshot of the viewport as `<target>/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The requests the page made after loading, by `fetch` or `XMLHttpRequest` (htmx's):
    /// a live page must make none by itself.
    pub async fn script_requests(&self) -> Vec<String> {
        let v = self
            .js("return performance.getEntriesByType('resource')
                   .filter(e => e.initiatorType === 'xmlhttprequest' || e.initiatorType === 'fetch')
                   .map(e => e.name);")
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    }

    /// Bytes the page's first load costs: the document and everything it loaded, each as
    /// transferred or, when it came from the cache, as its encoded body (what an empty cache
    /// would have fetched).
    pub async fn weight(&self) -> u64 {
        self.js("return performance.getEntriesByType('navigation')
               .concat(performance.getEntriesByType('resource'))
               .reduce((n, e) => n + Math.max(e.transferSize || 0, e.encodedBodySize || 0), 0);")
            .await
            .as_u64()
            .unwrap()
    }

    /// The browser console's errors since the last call (chromedriver's log).
    pub async fn console_errors(&self) -> Vec<String> {
        let session = self.client.session_id().await.unwrap().unwrap();
        let log: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        log["value"]
            .as_array()
            .unwrap_or_else(|| panic!("no browser log in {log}"))
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Fails the test if the console holds an error; then closes the browser.
    pub async fn finish(self) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "browser console errors: {errors:#?}");
        self.client.clone().close().await.unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where tests save screenshots: `<target>/screenshots`.
pub fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .join("screenshots")
}
