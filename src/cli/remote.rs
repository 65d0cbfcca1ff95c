//! `edgecam config …`: manage a board's configuration from a laptop, through
//! its HTTP API (no SSH).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Where the board is and how to prove the right to change it.
pub struct Remote {
    pub url: String,
    pub token: Option<String>,
}

/// What the user asked for.
pub enum Action<'a> {
    Get,
    Set { key: &'a str, value: &'a str },
    Apply { file: &'a Path },
    Validate { file: &'a Path },
}

/// The answer, for the exit status: refused (2) is the user's to fix.
pub enum Outcome {
    Done,
    Refused,
}

struct Reply {
    status: u16,
    etag: Option<String>,
    body: String,
}

impl Remote {
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Reply> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let with_headers = |mut request: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            if let Some(bearer) = &bearer {
                request = request.header("Authorization", bearer);
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request
        };
        let response = match method {
            "GET" => {
                let mut request = agent.get(&url);
                if let Some(bearer) = &bearer {
                    request = request.header("Authorization", bearer);
                }
                request.call()
            }
            "PUT" => with_headers(agent.put(&url)).send(body.unwrap_or_default()),
            "PATCH" => with_headers(agent.patch(&url)).send(body.unwrap_or_default()),
            _ => with_headers(agent.post(&url)).send(body.unwrap_or_default()),
        };
        let mut response = response.with_context(|| format!("{method} {url}"))?;
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading the answer to {method} {url}"))?;
        Ok(Reply {
            status: response.status().as_u16(),
            etag,
            body,
        })
    }

    /// Runs `action`, printing what a person needs to see.
    pub fn run(&self, action: Action<'_>) -> Result<Outcome> {
        match action {
            Action::Get => {
                let reply = self.send("GET", "/api/config", &[], None)?;
                if reply.status != 200 {
                    return refused(&reply);
                }
                print!("{}", reply.body);
                Ok(Outcome::Done)
            }
            Action::Set { key, value } => {
                let fragment = fragment(key, value)?;
                self.write("PATCH", &fragment)
            }
            Action::Apply { file } => {
                let text = read(file)?;
                self.write("PUT", &text)
            }
            Action::Validate { file } => {
                let text = read(file)?;
                let reply = self.send("POST", "/api/config/validate", &[], Some(&text))?;
                if reply.status != 200 {
                    return refused(&reply);
                }
                let answer: Value = serde_json::from_str(&reply.body).unwrap_or_default();
                println!("valid");
                print_changes(&answer["changes"]);
                Ok(Outcome::Done)
            }
        }
    }

    /// Reads the current revision and writes against it.
    fn write(&self, method: &str, body: &str) -> Result<Outcome> {
        let current = self.send("GET", "/api/config", &[], None)?;
        if current.status != 200 {
            return refused(&current);
        }
        let etag = current.etag.context("the board sent no ETag")?;
        let headers = [
            ("If-Match", etag.as_str()),
            ("Content-Type", "application/toml"),
        ];
        let reply = self.send(method, "/api/config", &headers, Some(body))?;
        if reply.status != 200 {
            return refused(&reply);
        }
        let answer: Value = serde_json::from_str(&reply.body).unwrap_or_default();
        print_changes(&answer["changes"]);
        Ok(Outcome::Done)
    }
}

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

/// `encoder.bitrate_kbps` + `800` → `encoder.bitrate_kbps = 800`. A value
/// that is not valid TOML on its own (a bare word) is taken as a string.
fn fragment(key: &str, value: &str) -> Result<String> {
    if key.is_empty()
        || !key.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    {
        bail!("{key:?} is not a key like encoder.bitrate_kbps");
    }
    let as_toml = format!("{key} = {value}\n");
    if as_toml.parse::<toml_edit::DocumentMut>().is_ok() {
        return Ok(as_toml);
    }
    Ok(format!("{key} = {}\n", toml_edit::Value::from(value)))
}

fn print_changes(changes: &Value) {
    let Some(changes) = changes.as_array() else {
        return;
    };
    if changes.is_empty() {
        println!("no setting changed");
    }
    for change in changes {
        println!(
            "{}: {} → {} ({})",
            change["key"].as_str().unwrap_or("?"),
            change["from"],
            change["to"],
            change["effect"].as_str().unwrap_or("?")
        );
    }
}

fn refused(reply: &Reply) -> Result<Outcome> {
    let answer: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    let message = answer["error"]
        .as_str()
        .map_or_else(|| reply.body.trim().to_owned(), str::to_owned);
    eprintln!("refused ({}): {message}", reply.status);
    print_changes(&answer["changes"]);
    Ok(Outcome::Refused)
}

#[cfg(test)]
mod tests {
    use super::fragment;

    #[test]
    fn set_values_become_toml() {
        assert_eq!(
            fragment("encoder.bitrate_kbps", "800").unwrap(),
            "encoder.bitrate_kbps = 800\n"
        );
        assert_eq!(
            fragment("hls.enabled", "false").unwrap(),
            "hls.enabled = false\n"
        );
        assert_eq!(
            fragment("rtsp.path", "/door").unwrap(),
            "rtsp.path = \"/door\"\n"
        );
        assert_eq!(
            fragment("rtsp.path", "\"/door\"").unwrap(),
            "rtsp.path = \"/door\"\n"
        );
        assert!(fragment("a..b", "1").is_err());
        assert!(fragment("a = 1 #", "1").is_err());
    }
}
