//! The web UI's doors, tried over real sockets against the real daemon: the
//! one-time login link, the session cookie, CSRF, Host and Origin checks
//! (DNS rebinding), logging out, and `--ui-listen` with its password and
//! HTTPS. The pages themselves are driven in a browser by `browser_ui.rs`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{free_port, run_refusing, Daemon, Sandbox, BIN};

/// An HTTP/1.1 answer, read whole.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// `name=value` of the cookie the answer sets.
    fn cookie(&self) -> String {
        let set = self.header("set-cookie").expect("a Set-Cookie header");
        set.split(';').next().unwrap().to_string()
    }
}

/// Sends one request with exactly the headers given (Host included).
fn http(api: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = TcpStream::connect(api).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request += &format!("Host: {api}\r\n");
    }
    for (k, v) in headers {
        request += &format!("{k}: {v}\r\n");
    }
    if !body.is_empty() {
        request += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    request += "\r\n";
    request += body;
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn api_addr(d: &Daemon) -> String {
    std::fs::read_to_string(d.data_dir.join("api.addr"))
        .unwrap()
        .trim()
        .to_string()
}

/// The path and query of a fresh login link, from `peershare ui --print`.
fn fresh_link(d: &Daemon) -> String {
    let link = d.cli_ok(&["ui", "--print"]);
    let url = link["url"].as_str().expect("a url").to_string();
    assert!(link["expires_in_secs"].as_u64().unwrap() > 0, "{link}");
    let path = url.split_once("127.0.0.1").unwrap().1;
    path[path.find('/').unwrap()..].to_string()
}

fn policy_of(d: &Daemon) -> String {
    d.status()["policy"].as_str().unwrap().to_string()
}

#[test]
fn a_login_link_opens_one_session_and_nothing_else_gets_in() {
    let sandbox = Sandbox::new();
    let d = Daemon::start(&sandbox, "a", &["--no-index"]);
    let api = api_addr(&d);

    // Without a session: the page shows how to log in, the API refuses, the stylesheet is public.
    let page = http(&api, "GET", "/", &[], "");
    assert_eq!(page.status, 401);
    assert!(page.body.contains("peershare ui"), "{}", page.body);
    assert_eq!(http(&api, "GET", "/api/v1/status", &[], "").status, 401);
    assert_eq!(http(&api, "GET", "/api/v1/events", &[], "").status, 401);
    assert_eq!(http(&api, "GET", "/assets/style.css", &[], "").status, 200);

    // The link logs in once; the code leaves the address bar; the cookie is HttpOnly and Strict.
    let link = fresh_link(&d);
    let login = http(&api, "GET", &link, &[], "");
    assert_eq!(login.status, 303, "{}", login.head);
    assert_eq!(login.header("location").as_deref(), Some("/"));
    let set = login.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain http on loopback: {set}");
    let again = http(&api, "GET", &link, &[], "");
    assert_eq!(again.status, 401, "a link works once");
    assert!(again.body.contains("used already or has expired"));
    let cookie = login.cookie();
    let with_cookie = [("Cookie", cookie.as_str())];

    let page = http(&api, "GET", "/", &with_cookie, "");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    let session = http(&api, "GET", "/api/v1/ui/session", &with_cookie, "");
    assert_eq!(session.status, 200, "{}", session.body);
    let session: serde_json::Value = serde_json::from_str(&session.body).unwrap();
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(session["remote"], false);
    assert_eq!(
        http(&api, "GET", "/api/v1/status", &with_cookie, "").status,
        200
    );

    // A state change without the CSRF token, with a wrong one, from another origin
    // (another local port is the same site for cookies) or another Host is refused,
    // and changes nothing.
    let ask = r#"{"policy":"ask"}"#;
    let refused = [
        vec![("Cookie", cookie.as_str())],
        vec![("Cookie", cookie.as_str()), ("X-CSRF-Token", "guess")],
        vec![
            ("Cookie", cookie.as_str()),
            ("X-CSRF-Token", csrf.as_str()),
            ("Origin", "http://127.0.0.1:8080"),
        ],
        vec![
            ("Cookie", cookie.as_str()),
            ("X-CSRF-Token", csrf.as_str()),
            ("Host", "rebound.example:1101"),
        ],
    ];
    for headers in &refused {
        let answer = http(&api, "POST", "/api/v1/policy", headers, ask);
        assert_eq!(answer.status, 403, "{headers:?}: {}", answer.body);
        let error: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let rebound_read = http(
        &api,
        "GET",
        "/api/v1/status",
        &[("Cookie", &cookie), ("Host", "rebound.example:1101")],
        "",
    );
    assert_eq!(rebound_read.status, 403, "a rebound page reads nothing");
    assert_eq!(policy_of(&d), "accept");

    // The page's own request goes through.
    let own_origin = format!("http://{api}");
    let accepted = http(
        &api,
        "POST",
        "/api/v1/policy",
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Origin", &own_origin),
        ],
        ask,
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(policy_of(&d), "ask");

    // A page cannot mint login links; only the token's holder can.
    let minted = http(
        &api,
        "POST",
        "/api/v1/ui/link",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        "{}",
    );
    assert_eq!(minted.status, 403);

    // Logging out ends the session for good.
    let out = http(
        &api,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        "",
    );
    assert_eq!(out.status, 204);
    assert_eq!(
        http(&api, "GET", "/api/v1/status", &with_cookie, "").status,
        401
    );
    assert_eq!(http(&api, "GET", "/", &with_cookie, "").status, 401);
}

/// `up --json` with no index, on loopback ports of its own, keeping its data in `data_dir`.
fn lone_up(data_dir: &std::path::Path) -> Command {
    let mut up = Command::new(BIN);
    up.args([
        "--json",
        "up",
        "--no-index",
        "--no-mdns",
        "--api",
        "127.0.0.1:0",
    ])
    .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--data-dir"])
    .arg(data_dir);
    up
}

/// Runs `up` expecting it to refuse to start; its error message.
fn refused_start(data_dir: &std::path::Path, extra: &[&str]) -> String {
    let out = run_refusing(lone_up(data_dir).args(extra));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_ui_beyond_loopback_needs_a_password_and_https() {
    let sandbox = Sandbox::new();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");

    let second = sandbox.dir("second").join("data");
    let plain = refused_start(&second, &["--ui-listen", &listen]);
    assert!(
        plain.contains("HTTPS") && plain.contains("--ui-insecure"),
        "{plain}"
    );
    let no_password = refused_start(&second, &["--ui-listen", &listen, "--ui-insecure"]);
    assert!(no_password.contains("--set-password"), "{no_password}");

    // Set a password, then serve the UI with TLS on the extra listener.
    let set = support::run_client_with_input(
        &[
            "--data-dir".as_ref(),
            second.as_os_str(),
            "ui".as_ref(),
            "--set-password".as_ref(),
        ],
        Some("a long ui password\n"),
    );
    assert!(set.ok, "{:?}", set.values);
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let tls = sandbox.dir("tls");
    let (cert, key) = (tls.join("ui.crt"), tls.join("ui.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let remote = Daemon::start(
        &sandbox,
        "second",
        &[
            "--no-index",
            "--ui-listen",
            &listen,
            "--ui-tls-cert",
            cert.to_str().unwrap(),
            "--ui-tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(remote.data_dir, second, "the same data folder");

    peershare_node::install_tls_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(made.cert.pem().as_bytes()).unwrap(),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let base = format!("https://{listen}");
        let origin = [("Origin", base.as_str())];
        let login = |password: &'static str| {
            let mut request = client
                .post(format!("{base}/login"))
                .form(&[("password", password)]);
            for (k, v) in origin {
                request = request.header(k, v);
            }
            request.send()
        };

        // The login page offers the password; links do not work here.
        let page = client.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 401);
        assert!(page.text().await.unwrap().contains("name=\"password\""));
        let link = fresh_link(&remote);
        let by_link = client.get(format!("{base}{link}")).send().await.unwrap();
        assert_eq!(by_link.status(), 403);

        let wrong = login("not the password").await.unwrap();
        assert_eq!(wrong.status(), 401);
        assert!(wrong.text().await.unwrap().contains("Wrong password"));
        let right = login("a long ui password").await.unwrap();
        assert_eq!(right.status(), 303);
        let set = right.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(set.contains("Secure") && set.contains("HttpOnly"), "{set}");
        let cookie = set.split(';').next().unwrap().to_string();
        let status = client
            .get(format!("{base}/api/v1/status"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(status.status(), 200);
        let session: serde_json::Value = client
            .get(format!("{base}/api/v1/ui/session"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(session["remote"], true);
        // Opening a folder makes no sense for a browser on another machine.
        let csrf = session["csrf_token"].as_str().unwrap();
        let open = client
            .post(format!("{base}/api/v1/downloads/1/open"))
            .header("Cookie", &cookie)
            .header("X-CSRF-Token", csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(open.status(), 404, "no such download");

        // Guessing: five wrong passwords, then even the right one waits.
        for _ in 0..5 {
            assert_eq!(login("guess").await.unwrap().status(), 401);
        }
        let locked = login("a long ui password").await.unwrap();
        assert_eq!(locked.status(), 429);
        assert!(locked
            .text()
            .await
            .unwrap()
            .contains("Too many wrong passwords"));
    });
}

#[test]
fn the_link_up_prints_logs_a_browser_in() {
    let sandbox = Sandbox::new();
    let data = sandbox.dir("printed").join("data");
    let mut up = lone_up(&data)
        .arg("--downloads")
        .arg(sandbox.dir("printed").join("downloads"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(up.stdout.take().unwrap()),
        &mut first_line,
    )
    .unwrap();
    let printed: serde_json::Value = serde_json::from_str(&first_line).expect(&first_line);
    let link = printed["ui_link"].as_str().expect("up prints a login link");
    let api = printed["api"].as_str().unwrap().to_string();
    assert!(
        link.starts_with(&format!("http://{api}/login?code=")),
        "{link}"
    );
    let path = &link[link.find("/login").unwrap()..];
    let login = http(&api, "GET", path, &[], "");
    assert_eq!(login.status, 303, "{}", login.head);
    let cookie = login.cookie();
    assert_eq!(
        http(&api, "GET", "/api/v1/status", &[("Cookie", &cookie)], "").status,
        200
    );
    // Stop the daemon this test started, as Ctrl-C would.
    let stopped = Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(up.wait().unwrap().success(), "up stops cleanly on SIGTERM");
}
