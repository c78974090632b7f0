//! Request parameters as Prometheus and Loki read them: from the query string and, for POST, from
//! an `application/x-www-form-urlencoded` body, with repeated keys (`match[]`) kept in order.

use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};

use crate::error::{ApiError, PromError};

/// Largest form body read for a query request (queries are text; 1 MiB is ample).
const MAX_FORM_BYTES: usize = 1 << 20;

/// All parameters of a request, in order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The last value of `key` (Prometheus's `r.FormValue` takes the first; they agree in practice).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, e.g. all `match[]` selectors.
    pub fn get_all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    /// `key`, required: an error names it when missing.
    pub fn require(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::BadRequest(format!("missing parameter {key:?}")))
    }

    fn extend_from(&mut self, encoded: &[u8]) {
        self.0.extend(form_urlencoded::parse(encoded).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let mut params = Params::default();
        if let Some(q) = req.uri().query() {
            params.extend_from(q.as_bytes());
        }
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if req.method() == Method::POST && is_form {
            let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|_| ApiError::PayloadTooLarge(format!("form body larger than {MAX_FORM_BYTES} bytes")))?;
            params.extend_from(&body);
        }
        Ok(params)
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        crate::error::TextError(self).into_response()
    }
}

/// An extractor whose rejection is answered in Prometheus's JSON error shape ([`PromError`]) rather
/// than Loki's text: `Prom<Tenant>` and `Prom<Params>` for the Prometheus-style endpoints
/// (`/api/v1/*`), whose clients (Grafana, KEDA) parse `{"status":"error",...}`.
pub struct Prom<T>(pub T);

impl<S: Send + Sync, T: axum::extract::FromRequestParts<S, Rejection = ApiError>> axum::extract::FromRequestParts<S>
    for Prom<T>
{
    type Rejection = PromError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Prom(T::from_request_parts(parts, state).await?))
    }
}

impl<S: Send + Sync> FromRequest<S> for Prom<Params> {
    type Rejection = PromError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Prom(Params::from_request(req, state).await?))
    }
}

/// The request's tenant, from `X-Scope-OrgID` (the default tenant when absent), as Loki, Mimir
/// and Cortex read it.
pub struct Tenant(pub model::TenantId);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get("x-scope-orgid").map(|v| v.to_str().unwrap_or("\u{fffd}"));
        Ok(Tenant(model::TenantId::from_header(value)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_kept() {
        let mut p = Params::default();
        p.extend_from(b"match%5B%5D=up&match%5B%5D=%7Bjob%3D%22x%22%7D&start=1");
        assert_eq!(p.get_all("match[]"), vec!["up".to_string(), "{job=\"x\"}".to_string()]);
        assert_eq!(p.get("start"), Some("1"));
        assert!(p.require("end").unwrap_err().to_string().contains("\"end\""));
    }

    #[tokio::test]
    async fn prom_answers_a_rejection_in_prometheus_json() {
        use axum::extract::FromRequestParts;
        use axum::response::IntoResponse;
        let request = Request::get("/api/v1/query").header("x-scope-orgid", "a/b").body(()).unwrap();
        let (mut parts, ()) = request.into_parts();
        let Err(rejection) = Prom::<Tenant>::from_request_parts(&mut parts, &()).await else {
            panic!("a tenant with a slash was accepted");
        };
        let response = rejection.into_response();
        assert_eq!(response.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
