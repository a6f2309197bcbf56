//! Debian's headless Chromium, driven through `chromedriver` over WebDriver
//! (fantoccini), for the console's browser tests. Blocking on purpose, like `Salve`:
//! a test reads as the steps a person takes.

use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium of its own, closed with its driver when dropped.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
}

/// Where the tests leave their screenshots; docs/console.md links the folder.
pub fn screenshots() -> PathBuf {
    crate::support::repo_dir().join("target/console-screenshots")
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium through it.
    /// Missing either is a failure that says what to install, never a skip.
    pub fn start() -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(program).exists(),
                "{program} is missing: apt-get install chromium chromium-driver"
            );
        }
        let port = crate::support::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let url = format!("http://127.0.0.1:{port}");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1360,1000",
                         "--no-first-run", "--password-store=basic"],
            }),
        );
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = runtime.block_on(
                ClientBuilder::new(connector)
                    .capabilities(capabilities.clone())
                    .connect(&url),
            );
            match attempt {
                Ok(client) => break client,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("no Chromium session through chromedriver: {e}"),
            }
        };
        Browser {
            runtime,
            client: Some(client),
            driver,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser is open")
    }

    pub fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub fn url(&self) -> String {
        self.runtime
            .block_on(self.client().current_url())
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// The text of the first element `css` finds, waiting for it to be there.
    pub fn text(&self, css: &str) -> String {
        self.runtime.block_on(async {
            let element = self.wait_for(css).await;
            element.text().await.unwrap_or_default()
        })
    }

    /// How many elements `css` finds now.
    pub fn count(&self, css: &str) -> usize {
        self.runtime
            .block_on(self.client().find_all(Locator::Css(css)))
            .map_or(0, |all| all.len())
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let started = Instant::now();
        loop {
            match self.client().find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(e) if started.elapsed() > Duration::from_secs(15) => {
                    let page = self.client().source().await.unwrap_or_default();
                    panic!("{css} is not on {}: {e}\n{page}", self.url_now().await)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn url_now(&self) -> String {
        self.client()
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    pub fn click(&self, css: &str) {
        self.runtime.block_on(async {
            let element = self.wait_for(css).await;
            element
                .click()
                .await
                .unwrap_or_else(|e| panic!("click {css}: {e}"));
        })
    }

    /// Types `text` into the field `css` finds, replacing what it held.
    pub fn fill(&self, css: &str, text: &str) {
        self.runtime.block_on(async {
            let element = self.wait_for(css).await;
            element
                .clear()
                .await
                .unwrap_or_else(|e| panic!("clear {css}: {e}"));
            element
                .send_keys(text)
                .await
                .unwrap_or_else(|e| panic!("type into {css}: {e}"));
        })
    }

    /// Picks the option `value` of the `<select>` `css` finds.
    pub fn select(&self, css: &str, value: &str) {
        self.runtime.block_on(async {
            let element = self.wait_for(css).await;
            element
                .select_by_value(value)
                .await
                .unwrap_or_else(|e| panic!("pick {value} in {css}: {e}"));
        })
    }

    /// Runs `script` in the page and gives its result.
    pub fn run(&self, script: &str) -> serde_json::Value {
        self.runtime
            .block_on(self.client().execute(script, Vec::new()))
            .unwrap_or_else(|e| panic!("run {script}: {e}"))
    }

    /// Waits until `script` (an expression) is true in the page.
    pub fn wait_until(&self, what: &str, script: &str) {
        let started = Instant::now();
        while self.run(&format!("return !!({script});")) != serde_json::Value::Bool(true) {
            if started.elapsed() > Duration::from_secs(15) {
                let page = self
                    .runtime
                    .block_on(self.client().source())
                    .unwrap_or_default();
                panic!("{what}: `{script}` never held on {}\n{page}", self.url());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A screenshot of the page as it is, as `name`.png in [`screenshots`].
    pub fn screenshot(&self, name: &str) {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = screenshots();
        std::fs::create_dir_all(&dir).expect("the screenshots' folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write a screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
