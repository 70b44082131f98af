//! A real browser for tests: Debian's headless Chromium, driven through
//! `chromedriver` by a few W3C WebDriver calls over plain HTTP (no WebDriver
//! client crate: the protocol is a handful of JSON requests): open, click,
//! type, pick from a `<select>`, read text and attributes, run a script,
//! resize the window and take screenshots.
//!
//! ```no_run
//! # async fn demo(approve_url: &str) -> anyhow::Result<()> {
//! let browser = ordersaga_tests::browser::Browser::start().await?;
//! browser.open(approve_url).await?;
//! browser.click("#approve").await?;
//! browser.wait_for("#status").await?;
//! browser.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Needs `chromium` and `chromium-driver` (`scripts/test` installs them);
//! `ORDERSAGA_CHROMIUM_BIN` / `ORDERSAGA_CHROMEDRIVER_BIN` override where
//! they are looked for.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::{die_with_parent, eventually, free_port};

/// How long [`Browser::wait_for`] polls before giving up.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Any single WebDriver command (a page load included) taking longer than
/// this is a hang, not a slow machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The key under which WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium flags for a machine without internet: without the
/// background-networking ones Chromium stalls on refused connections.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// An error the WebDriver server answered with (W3C error codes such as
/// `no such element`), as opposed to a transport failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebDriverError {
    /// The W3C error code, e.g. `no such element`.
    pub error: String,
    /// chromedriver's message.
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The first line only: chromedriver appends a native stack trace.
        let message = self.message.lines().next().unwrap_or_default();
        write!(f, "WebDriver error `{}`: {message}", self.error)
    }
}

impl std::error::Error for WebDriverError {}

/// `$var` if set, else the first of `candidates` that exists (bare names
/// are looked up on `PATH`).
fn find_binary(var: &str, candidates: &[&str], package: &str) -> anyhow::Result<PathBuf> {
    let overridden = std::env::var(var).ok().filter(|v| !v.is_empty());
    let candidates: Vec<&str> = match &overridden {
        Some(v) => vec![v.as_str()],
        None => candidates.to_vec(),
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates
        .iter()
        .flat_map(|c| {
            let c = PathBuf::from(c);
            if c.components().count() > 1 {
                vec![c]
            } else {
                std::env::split_paths(&path).map(|d| d.join(&c)).collect()
            }
        })
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{} not found: the browser tests need Debian's `{package}` package \
                 (apt-get install chromium chromium-driver; scripts/test installs them), \
                 or {var} set to the binary",
                candidates.join(" or ")
            )
        })
}

/// A headless Chromium session behind its own `chromedriver`. Dropping it
/// deletes the session (Chromium quits) and kills the driver; prefer
/// [`Browser::close`] to see errors.
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:<port>` of chromedriver.
    base: String,
    /// `None` once closed.
    session: Option<String>,
    http: reqwest::Client,
    /// Chromium's fresh profile; removed after the session is gone.
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port, waits until it is ready and opens
    /// a headless Chromium session with a fresh profile.
    pub async fn start() -> anyhow::Result<Self> {
        let chromium = find_binary(
            "ORDERSAGA_CHROMIUM_BIN",
            &["/usr/bin/chromium", "chromium"],
            "chromium",
        )?;
        let chromedriver = find_binary(
            "ORDERSAGA_CHROMEDRIVER_BIN",
            &["/usr/bin/chromedriver", "chromedriver"],
            "chromium-driver",
        )?;
        let port = free_port()?;
        let mut cmd = Command::new(&chromedriver);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Chromium inherits the group: one kill on drop reaches both.
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(cmd.as_std_mut());
        let driver = cmd
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()?;
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            http,
            profile: tempfile::tempdir()?,
        };
        browser.wait_until_ready().await?;
        browser.session = Some(browser.new_session(&chromium).await?);
        Ok(browser)
    }

    /// Polls `/status` until chromedriver is ready; fails at once if it
    /// exited (e.g. its port was taken in the meantime).
    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let status_url = format!("{}/status", self.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.driver.try_wait()? {
                bail!("chromedriver exited with {exit} before it was ready");
            }
            let status = match self.http.get(&status_url).send().await {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if status.is_some_and(|s| s["value"]["ready"] == true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("chromedriver at {} was not ready within 30 s", self.base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn new_session(&self, chromium: &std::path::Path) -> anyhow::Result<String> {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.path().display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium.to_string_lossy(),
                        "args": args,
                    },
                },
            },
        });
        let created = self
            .send(Method::POST, "/session", Some(capabilities))
            .await
            .context("creating a headless Chromium session")?;
        created["sessionId"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no sessionId in {created}"))
    }

    /// One WebDriver command; its `value`, or a [`WebDriverError`].
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let mut answer: Value = response
            .json()
            .await
            .with_context(|| format!("{method} {path}: HTTP {status}, not JSON"))?;
        let value = answer["value"].take();
        if !status.is_success() {
            let field = |name: &str| value[name].as_str().unwrap_or_default().to_string();
            return Err(anyhow::Error::new(WebDriverError {
                error: field("error"),
                message: field("message"),
            })
            .context(format!("{method} {path}")));
        }
        Ok(value)
    }

    /// A command on this session (`path` relative to `/session/{id}`).
    async fn session_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let session = self.session.as_deref().context("the browser is closed")?;
        self.send(method, &format!("/session/{session}{path}"), body)
            .await
    }

    /// The element reference of the first match of `css`.
    async fn find(&self, css: &str) -> anyhow::Result<String> {
        let found = self
            .session_send(
                Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        found[ELEMENT_KEY]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no element reference in {found}"))
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn open(&self, url: &str) -> anyhow::Result<()> {
        self.session_send(Method::POST, "/url", Some(json!({"url": url})))
            .await
            .with_context(|| format!("opening {url}"))?;
        Ok(())
    }

    /// The URL of the current page (after redirects).
    pub async fn current_url(&self) -> anyhow::Result<String> {
        let url = self.session_send(Method::GET, "/url", None).await?;
        url.as_str()
            .map(str::to_string)
            .with_context(|| format!("not a URL: {url}"))
    }

    /// Clicks the first element matching `css` (as a user would: it must be
    /// visible and not covered).
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await.with_context(|| format!("{css:?}"))?;
        self.session_send(
            Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await
        .with_context(|| format!("clicking {css:?}"))?;
        Ok(())
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css).await.with_context(|| format!("{css:?}"))?;
        let text = self
            .session_send(Method::GET, &format!("/element/{element}/text"), None)
            .await?;
        text.as_str()
            .map(str::to_string)
            .with_context(|| format!("not text: {text}"))
    }

    /// An attribute of the first element matching `css` (`None`: absent).
    pub async fn attribute(&self, css: &str, name: &str) -> anyhow::Result<Option<String>> {
        let element = self.find(css).await.with_context(|| format!("{css:?}"))?;
        let value = self
            .session_send(
                Method::GET,
                &format!("/element/{element}/attribute/{name}"),
                None,
            )
            .await?;
        Ok(value.as_str().map(str::to_string))
    }

    /// Types `text` into the first element matching `css`, replacing what
    /// it held (as a user would: it must be interactable).
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await.with_context(|| format!("{css:?}"))?;
        self.session_send(
            Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await
        .with_context(|| format!("clearing {css:?}"))?;
        self.session_send(
            Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .with_context(|| format!("typing into {css:?}"))?;
        Ok(())
    }

    /// Picks the option with `value` of the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) -> anyhow::Result<()> {
        self.click(&format!("{css} option[value=\"{value}\"]"))
            .await
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> anyhow::Result<usize> {
        let found = self
            .session_send(
                Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(found.as_array().map_or(0, Vec::len))
    }

    /// The rendered text of every element matching `css`, in page order.
    pub async fn texts(&self, css: &str) -> anyhow::Result<Vec<String>> {
        let found = self
            .session_send(
                Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        let mut texts = Vec::new();
        for element in found.as_array().into_iter().flatten() {
            let Some(id) = element[ELEMENT_KEY].as_str() else {
                continue;
            };
            let text = self
                .session_send(Method::GET, &format!("/element/{id}/text"), None)
                .await?;
            texts.push(text.as_str().unwrap_or_default().to_string());
        }
        Ok(texts)
    }

    /// Runs `script` (a function body; `return` gives the answer) in the
    /// page, e.g. to leave a mark that a reload would wipe.
    pub async fn execute(&self, script: &str) -> anyhow::Result<Value> {
        self.session_send(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Resizes the window (e.g. to a phone's width before a screenshot).
    pub async fn resize(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.session_send(
            Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await?;
        Ok(())
    }

    /// Writes a PNG of the viewport to `path` (WebDriver's screenshot).
    pub async fn screenshot(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use base64::Engine;
        let png = self.session_send(Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().context("no screenshot data")?)
            .context("screenshot data is not base64")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Polls until an element matches `css` (a page that is still loading,
    /// or a form post that navigates), for at most [`WAIT_TIMEOUT`].
    pub async fn wait_for(&self, css: &str) -> anyhow::Result<()> {
        eventually(&format!("an element {css:?}"), WAIT_TIMEOUT, || async {
            match self.find(css).await {
                Ok(_) => Ok(Some(())),
                Err(e)
                    if e.downcast_ref::<WebDriverError>()
                        .is_some_and(|w| w.error == "no such element") =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Deletes the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        if let Some(session) = self.session.take() {
            self.send(Method::DELETE, &format!("/session/{session}"), None)
                .await
                .context("deleting the browser session")?;
        }
        self.kill_group();
        self.driver.wait().await?;
        Ok(())
    }

    /// Kills chromedriver and whatever is left of its process group
    /// (Chromium, if the session could not be deleted).
    fn kill_group(&mut self) {
        // `None` once the driver was reaped: its group id may be reused.
        if let Some(pid) = self.driver.id().and_then(|p| i32::try_from(p).ok()) {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) on our own child's process group (negative
            // pid); it touches no memory.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Drop cannot await: ask chromedriver to quit Chromium from a
            // thread with its own runtime (and its own client: a reqwest
            // client's connections belong to the runtime that made them).
            let url = format!("{}/session/{session}", self.base);
            let deleted = std::thread::spawn(move || -> anyhow::Result<()> {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(async {
                        reqwest::Client::builder()
                            .timeout(Duration::from_secs(10))
                            .build()?
                            .delete(url)
                            .send()
                            .await?;
                        anyhow::Ok(())
                    })
            })
            .join();
            if let Ok(Err(e)) = deleted {
                eprintln!("could not delete the browser session: {e:#}");
            }
        }
        self.kill_group();
    }
}
