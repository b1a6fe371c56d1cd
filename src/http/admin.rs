//! The admin API: roster import and the erasure of one learner, behind the admin token.

use super::routes::json_reply;
use super::AppState;
use crate::auth_limit::{Api, Attempt};
use crate::domain::SchoolCode;
use crate::query::problem::ApiError;
use crate::soap::fault::Reply;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Request, StatusCode};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

/// `DELETE /api/v1/admin/schools/{school}/leerlingen/{leerlingid}` (or `…/leerlingen?eckid=…`):
/// erasure of one learner with the admin token (`governance::erase`, as `leerlingen erase`).
pub(super) async fn admin_erase(
    state: &AppState,
    headers: &hyper::HeaderMap,
    peer: SocketAddr,
    rest: &str,
    query: &str,
) -> Result<Reply, ApiError> {
    check_admin_token(state, headers, peer)?;
    let target = ErasureTarget::parse(rest, query)?;
    let config = state.config.clone();
    let store = state.intake.store.clone();
    let erased = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let not_erased = |error: &dyn std::fmt::Display| {
            tracing::error!(%error, "erasure failed");
            ApiError::Internal("nothing was erased")
        };
        let keyring = crate::secret::Keyring::load(&config.secrets_key_source(), false)
            .map_err(|error| not_erased(&error))?;
        let mapping = config.xapi_mapping().map_err(|error| not_erased(&error))?;
        let mut session = crate::store::session::Session::open(&store)?;
        let Some(learner) = crate::store::erasure::find_learner(
            &session,
            &target.school,
            target.leerlingid.as_deref(),
            target.eckid.as_deref(),
        )?
        else {
            return Err(ApiError::NoSuchLeerling);
        };
        crate::governance::erase(&mut session, &keyring, &mapping, &learner, "admin-api").map_err(
            |error| match error {
                crate::governance::GovernanceError::Store(error) => ApiError::Store(error),
                crate::governance::GovernanceError::Bridge(error) => ApiError::Store(error.into()),
            },
        )
    })
    .await;
    match erased {
        Ok(Ok(report)) => Ok(json_reply(
            StatusCode::OK,
            serde_json::to_value(&report).unwrap_or_default(),
        )),
        Ok(Err(error)) => Err(error),
        Err(error) => {
            tracing::error!(%error, "erasure failed");
            Err(ApiError::Internal("nothing was erased"))
        }
    }
}

/// The learner an erasure names, parsed from the path and query at the edge.
#[derive(Debug, PartialEq, Eq)]
struct ErasureTarget {
    school: SchoolCode,
    leerlingid: Option<String>,
    eckid: Option<String>,
}

impl ErasureTarget {
    /// `rest` is the path after `/api/v1/admin/schools/`: `{school}/leerlingen/{leerlingid}`,
    /// or `{school}/leerlingen` with `eckid` in the query.
    fn parse(rest: &str, query: &str) -> Result<ErasureTarget, ApiError> {
        let decode = |name: &'static str, text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| ApiError::bad_parameter(name, "is not UTF-8"))
        };
        let eckid = form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "eckid")
            .map(|(_, value)| value.into_owned());
        let parts: Vec<&str> = rest.split('/').collect();
        let (school, leerlingid) = match (parts.as_slice(), &eckid) {
            ([school, "leerlingen", leerlingid], None) => {
                (school, Some(decode("leerlingid", leerlingid)?))
            }
            ([school, "leerlingen"], Some(_)) => (school, None),
            _ => return Err(ApiError::NotFound),
        };
        let school = decode("school", school)?;
        let school = SchoolCode::parse(&school)
            .map_err(|reason| ApiError::bad_parameter("school", reason))?;
        Ok(ErasureTarget {
            school,
            leerlingid,
            eckid,
        })
    }
}

/// The admin bearer token, under the admin API's failed-authentication limit.
pub(super) fn check_admin_token(
    state: &AppState,
    headers: &hyper::HeaderMap,
    peer: SocketAddr,
) -> Result<(), ApiError> {
    let Some(expected) = state.config.admin_token.as_ref() else {
        return Err(ApiError::AdminOff);
    };
    let limiter = &state.intake.auth_limit;
    let attempt = Attempt {
        api: Api::Admin,
        klantcode: None,
        address: Some(peer.ip()),
    };
    if limiter.is_locked(&attempt) {
        return Err(ApiError::BadAdminToken);
    }
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    let matches: bool = Sha256::digest(presented.as_bytes())
        .ct_eq(&Sha256::digest(expected.expose().as_bytes()))
        .into();
    if !matches {
        limiter.record_failure(&attempt);
        return Err(ApiError::BadAdminToken);
    }
    Ok(())
}

/// `POST /api/v1/admin/leerlingen`: roster import (CSV or leerlinggegevens XML) with the admin token.
pub(super) async fn admin_import(
    state: &AppState,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Reply, ApiError> {
    check_admin_token(state, request.headers(), peer)?;
    let limited = http_body_util::Limited::new(request.into_body(), 64 << 20);
    let body = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Err(ApiError::TooLarge(error.to_string())),
    };
    let rows = match crate::roster::parse(&body) {
        Ok(rows) => rows,
        Err(error) => return Err(ApiError::Unprocessable(error.to_string())),
    };
    let imported = state
        .intake
        .store
        .write(move |connection| {
            crate::store::leerlingen::import_and_release(connection, &rows, "admin-api")
        })
        .await;
    match imported {
        Ok(Ok((imported, released))) => Ok(json_reply(
            StatusCode::OK,
            serde_json::json!({"imported": imported, "released_from_quarantine": released}),
        )),
        Ok(Err(error)) | Err(error) => Err(ApiError::Store(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erasure_names_its_learner_in_the_path_or_by_eckid() {
        let school = || SchoolCode::parse("99XX01").unwrap();
        assert_eq!(
            ErasureTarget::parse("99XX01/leerlingen/LL%201", "").unwrap(),
            ErasureTarget {
                school: school(),
                leerlingid: Some("LL 1".into()),
                eckid: None,
            }
        );
        assert_eq!(
            ErasureTarget::parse("99XX01/leerlingen", "eckid=https%3A%2F%2Fid.example").unwrap(),
            ErasureTarget {
                school: school(),
                leerlingid: None,
                eckid: Some("https://id.example".into()),
            }
        );
        let parameter = |rest: &str, query: &str| match ErasureTarget::parse(rest, query) {
            Err(ApiError::BadParameter { name, .. }) => name,
            other => panic!("{rest}?{query} gave {other:?}"),
        };
        assert_eq!(parameter("%20/leerlingen/LL1", ""), "school");
        assert_eq!(parameter("99XX01%FF/leerlingen/LL1", ""), "school");
        assert_eq!(parameter("99XX01/leerlingen/%FF", ""), "leerlingid");
        assert!(matches!(
            ErasureTarget::parse("99XX01/leerlingen", ""),
            Err(ApiError::NotFound)
        ));
    }
}
