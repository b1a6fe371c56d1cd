//! HTTP to a running gateway: SOAP posts as an EA sends them, REST reads with a bearer token, and the answer read whole.

use super::gateway::Gateway;
use super::read_sample;
use serde_json::Value;

/// An HTTP answer, read whole.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub receipt_id: Option<String>,
    pub body: String,
}

impl Reply {
    fn read(response: reqwest::blocking::Response) -> Reply {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let receipt_id = header("x-receipt-id");
        let status = response.status().as_u16();
        let body = response.text().expect("response body");
        Reply {
            status,
            content_type,
            receipt_id,
            body,
        }
    }

    /// The body as JSON (for the REST endpoints).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

impl Gateway {
    /// POSTs a body to the SOAP endpoint as an EA does.
    pub fn post(&self, body: impl Into<Vec<u8>>) -> Reply {
        self.post_with(
            body,
            "text/xml; charset=utf-8",
            Some("\"BrengLeerresultaten\""),
        )
    }

    /// POSTs with a chosen Content-Type and SOAPAction (None: no SOAPAction header).
    pub fn post_with(
        &self,
        body: impl Into<Vec<u8>>,
        content_type: &str,
        soap_action: Option<&str>,
    ) -> Reply {
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", content_type)
            .body(body.into());
        if let Some(action) = soap_action {
            request = request.header("soapaction", action);
        }
        self.answer(request)
    }

    pub fn post_sample(&self, file: &str) -> Reply {
        self.post(read_sample(file))
    }

    pub fn get(&self, path_and_query: &str) -> Reply {
        self.answer(self.http.get(format!("{}{path_and_query}", self.base_url)))
    }

    /// Any request, shaped by the caller.
    pub fn send(&self, request: reqwest::blocking::RequestBuilder) -> Reply {
        self.answer(request)
    }

    /// Sends a request; a transport failure fails the test with the end of the server's log.
    fn answer(&self, request: reqwest::blocking::RequestBuilder) -> Reply {
        match request.send() {
            Ok(response) => Reply::read(response),
            Err(error) => {
                let log = self.stderr();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "request to the gateway failed: {error:?}\nlast log lines:\n{}",
                    tail.join("\n")
                )
            }
        }
    }

    /// POSTs a message that must be answered with HTTP 200.
    #[track_caller]
    pub fn post_ok(&self, body: impl Into<Vec<u8>>) -> Reply {
        let reply = self.post(body);
        assert_eq!(reply.status, 200, "message refused: {}", reply.body);
        reply
    }

    /// POSTs samples (file names in `samples/`) in order; each must be answered with HTTP 200.
    #[track_caller]
    pub fn post_accepted(&self, files: &[impl AsRef<str>]) {
        for file in files {
            let reply = self.post_sample(file.as_ref());
            assert_eq!(reply.status, 200, "{}: {}", file.as_ref(), reply.body);
        }
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// GET with an optional bearer token: status, content type and the body as JSON (a
    /// JSON string when it is not JSON).
    pub fn get_json(&self, path: &str, token: Option<&str>) -> (u16, String, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let reply = self.answer(request);
        let body = serde_json::from_str(&reply.body).unwrap_or(Value::String(reply.body));
        (reply.status, reply.content_type, body)
    }

    /// GET that must answer 200; returns the JSON body.
    #[track_caller]
    pub fn get_ok(&self, path: &str, token: &str) -> Value {
        let (status, _, body) = self.get_json(path, Some(token));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}
