//! Function URL requests and responses (the API Gateway HTTP API v2 format), converted here
//! rather than by `lambda_http`'s adapter.
//!
//! The adapter panics on some payloads a direct invocation could send (a body flagged base64
//! that is not base64, a path or host that does not make a URI): the runtime would report the
//! panic, but nothing an event holds should make the function panic. Here each is an
//! [`InvalidEvent`] naming the field, and the rest of the request is exactly what the adapter
//! would build for the handler.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::http::header::{COOKIE, HOST, SET_COOKIE};
use lambda_http::http::{HeaderValue, Uri};
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use shared::InvalidEvent;

/// Parses a raw Lambda payload as a Function URL request.
pub fn parse(payload: Value) -> Result<Request, InvalidEvent> {
    if !payload.is_object() {
        return Err(InvalidEvent::new(format!(
            "expected a Lambda Function URL request object, got {}",
            shared::events::kind_of(&payload)
        )));
    }
    let event: ApiGatewayV2httpRequest = serde_json::from_value(payload)
        .map_err(|_| InvalidEvent::new("not a Lambda Function URL request"))?;
    request(event)
}

fn request(event: ApiGatewayV2httpRequest) -> Result<Request, InvalidEvent> {
    let path = event
        .raw_path
        .as_deref()
        .filter(|path| !path.is_empty())
        .unwrap_or("/");
    let host = event
        .headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .or(event.request_context.domain_name.as_deref())
        .unwrap_or("localhost");
    let mut uri = format!("https://{host}{path}");
    if let Some(query) = event.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(query);
    }
    let uri = Uri::try_from(uri).map_err(|_| {
        InvalidEvent::new("rawPath, rawQueryString or the host header: not a valid URL")
    })?;
    let body = match event.body {
        None => Body::Empty,
        Some(text) if event.is_base64_encoded => Body::Binary(
            STANDARD
                .decode(text)
                .map_err(|_| InvalidEvent::new("body: isBase64Encoded, but not base64"))?,
        ),
        Some(text) => Body::Text(text),
    };
    let mut request = Request::new(body);
    *request.method_mut() = event.request_context.http.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = event.headers;
    // A Function URL hands the browser's cookies over apart from the headers.
    if let Some(cookies) = event.cookies.filter(|cookies| !cookies.is_empty())
        && let Ok(value) = HeaderValue::from_str(&cookies.join("; "))
    {
        request.headers_mut().insert(COOKIE, value);
    }
    Ok(request)
}

/// The Function URL response for `response`: `Set-Cookie` headers go to `cookies`, as Function
/// URLs want them, and a binary body is base64.
pub fn response(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let cookies = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect();
    headers.remove(SET_COOKIE);
    let mut answer = ApiGatewayV2httpResponse::default();
    answer.status_code = i64::from(parts.status.as_u16());
    answer.is_base64_encoded = matches!(body, Body::Binary(_));
    answer.body = match body {
        Body::Empty => None,
        body => Some(body),
    };
    answer.multi_value_headers = headers.clone();
    answer.headers = headers;
    answer.cookies = cookies;
    answer
}

#[cfg(test)]
mod tests {
    use lambda_http::http::{Method, StatusCode};
    use serde_json::json;

    use super::*;

    fn event(extra: Value) -> Value {
        let mut event = json!({
            "version": "2.0", "rawPath": "/", "rawQueryString": "link=abc.def",
            "headers": {"host": "x.lambda-url.us-east-1.on.aws", "content-type": "text/plain"},
            "cookies": ["__Host-approval=AAEC", "other=1"],
            "requestContext": {"http": {"method": "POST", "path": "/"}, "domainName": "x.lambda-url.us-east-1.on.aws"},
            "body": "aGVsbG8=", "isBase64Encoded": true
        });
        for (key, value) in extra.as_object().into_iter().flatten() {
            event[key] = value.clone();
        }
        event
    }

    #[test]
    fn a_function_url_request_becomes_the_request_the_handler_reads() {
        let request = parse(event(json!({}))).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().query(), Some("link=abc.def"));
        assert_eq!(request.headers()[COOKIE], "__Host-approval=AAEC; other=1");
        assert_eq!(request.body().as_ref(), b"hello");
        let plain = parse(event(json!({"body": "link=x", "isBase64Encoded": false}))).unwrap();
        assert_eq!(plain.body().as_ref(), b"link=x");
    }

    #[test]
    fn what_would_make_the_adapter_panic_is_an_invalid_event() {
        for (extra, field) in [
            (json!({"body": "not base64!"}), "body"),
            (json!({"rawPath": "/a b"}), "rawPath"),
            (json!({"rawQueryString": "a=\u{1}"}), "rawQueryString"),
            (json!({"headers": {"host": "a b"}}), "host"),
        ] {
            let error = parse(event(extra.clone())).unwrap_err();
            assert!(error.message().contains(field), "{extra}: {error}");
        }
        for foreign in [json!([1]), json!("GET /"), json!({"requestContext": 7})] {
            assert!(parse(foreign).is_err());
        }
    }

    #[test]
    fn set_cookie_goes_to_the_cookies_field() {
        let mut page = Response::new(Body::from("<p>hi</p>"));
        *page.status_mut() = StatusCode::FORBIDDEN;
        page.headers_mut()
            .insert(SET_COOKIE, HeaderValue::from_static("a=1; Secure"));
        page.headers_mut()
            .insert("content-type", HeaderValue::from_static("text/html"));
        let answer = serde_json::to_value(response(page)).unwrap();
        assert_eq!(answer["statusCode"], 403);
        assert_eq!(answer["cookies"], json!(["a=1; Secure"]));
        assert_eq!(answer["headers"]["content-type"], "text/html");
        assert!(answer["headers"].get("set-cookie").is_none());
        assert_eq!(answer["body"], "<p>hi</p>");
        assert_eq!(answer["isBase64Encoded"], false);
    }
}
