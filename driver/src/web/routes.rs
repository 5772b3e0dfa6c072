//! The dashboard's HTTP endpoints and its embedded page (HTML, CSS and script compiled into
//! the binary: nothing is fetched from elsewhere).
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/` | the page |
//! | GET | `/assets/app.css`, `/assets/app.js` | its style and script |
//! | GET | `/api/state` | the current [`Snapshot`](super::Snapshot) |
//! | GET | `/api/events` | the snapshots as server-sent events (`state`), 4/s while a run goes |
//! | POST | `/api/runs` | start a run (JSON [`StartForm`]): 202 `{id}`, 400 `{error}`, 409 |
//! | POST | `/api/compare` | start every mode back to back (same form, mode ignored) |
//! | POST | `/api/stop` | stop the run in progress: 202 `{id}`, 409 when none |
//! | GET | `/api/runs` | the history |
//! | GET | `/api/runs/{id}` | one entry with its report (or comparison) as JSON |
//! | GET | `/api/runs/{id}/report.json`, `.../report.html` | downloads |
//! | GET | `/api/comparison.html?ids=1,2`, `/api/comparison.json?ids=1,2` | runs side by side |

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::WatchStream;

use super::form::StartForm;
use super::history::{Entry, MAX_HISTORY, Outcome};
use super::{App, StartError};
use crate::report::comparison::Comparison;
use crate::report::html::{comparison_page, report_page};
use crate::report::markup::escape as markup_escape;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// Largest request body (a start form is a few hundred bytes).
const MAX_BODY: usize = 16 * 1024;

/// The page's policy: its own script and style only, talking only to this server.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                        connect-src 'self'; img-src 'self' data:; form-action 'none'; \
                        base-uri 'none'; frame-ancestors 'none'";

/// Every route, behind the [`guard`](super::guard::guard).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/app.css", get(style))
        .route("/assets/app.js", get(script))
        .route("/api/state", get(state))
        .route("/api/events", get(events))
        .route("/api/runs", get(list).post(start_run))
        .route("/api/compare", post(start_compare))
        .route("/api/stop", post(stop))
        .route("/api/runs/{id}", get(entry))
        .route("/api/runs/{id}/report.json", get(report_json))
        .route("/api/runs/{id}/report.html", get(report_html))
        .route("/api/comparison.json", get(comparison_json))
        .route("/api/comparison.html", get(comparison_html))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            super::guard::guard,
        ))
        .with_state(app)
}

/// A JSON error `{error}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn index(State(app): State<Arc<App>>) -> Response {
    let config = app.config();
    let fixed_target = config.target.as_deref().unwrap_or_default();
    let where_ = match (&config.coordinator, &config.target) {
        (Some(c), _) => format!("distributed through the coordinator {c}"),
        (None, Some(t)) => format!("against {t}"),
        (None, None) => "standalone: an embedded server unless a target is given".into(),
    };
    let page = INDEX
        .replace("{{CSRF}}", app.access().csrf())
        .replace(
            "{{TOKEN_REQUIRED}}",
            if app.access().token_required() {
                "yes"
            } else {
                "no"
            },
        )
        .replace("{{FIXED_TARGET}}", &markup_escape(fixed_target))
        .replace(
            "{{DISTRIBUTED}}",
            if config.coordinator.is_some() {
                "yes"
            } else {
                "no"
            },
        )
        .replace("{{WHERE}}", &markup_escape(&where_));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn state(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.snapshot().to_string(),
    )
        .into_response()
}

/// The snapshots as they change, until the dashboard shuts down.
async fn events(State(app): State<Arc<App>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let shutdown = app.shutdown.clone();
    let stream = WatchStream::new(app.subscribe())
        .map(|json| Ok(Event::default().event("state").data(json.as_ref())))
        .take_until(async move { shutdown.cancelled().await });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn start_run(State(app): State<Arc<App>>, Json(form): Json<StartForm>) -> Response {
    started(app.start(&form, false))
}

async fn start_compare(State(app): State<Arc<App>>, Json(form): Json<StartForm>) -> Response {
    started(app.start(&form, true))
}

fn started(result: Result<u64, StartError>) -> Response {
    match result {
        Ok(id) => (StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response(),
        Err(err @ StartError::Invalid(_)) => error(StatusCode::BAD_REQUEST, err.to_string()),
        Err(err @ StartError::Busy(_)) => error(StatusCode::CONFLICT, err.to_string()),
    }
}

async fn stop(State(app): State<Arc<App>>) -> Response {
    match app.stop() {
        Some(id) => (StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response(),
        None => error(StatusCode::CONFLICT, "no run is in progress"),
    }
}

async fn list(State(app): State<Arc<App>>) -> Response {
    let history = app.history();
    let entries: Vec<&Entry> = history.entries().collect();
    Json(json!({ "runs": entries })).into_response()
}

/// The entry `id` with `f` of it, or 404.
fn with_entry(app: &App, id: u64, f: impl FnOnce(&Entry) -> Response) -> Response {
    match app.history().get(id) {
        Some(entry) => f(entry),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no run #{id} in the history"),
        ),
    }
}

async fn entry(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Response {
    with_entry(&app, id, |entry| {
        let result = match &entry.outcome {
            Some(Outcome::Report(report)) => serde_json::to_value(&**report).ok(),
            Some(Outcome::Comparison(cmp)) => serde_json::to_value(&**cmp).ok(),
            None => None,
        };
        Json(json!({ "entry": entry, "result": result })).into_response()
    })
}

async fn report_json(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Response {
    with_entry(&app, id, |entry| {
        let body = match &entry.outcome {
            Some(Outcome::Report(report)) => report.to_json(),
            Some(Outcome::Comparison(cmp)) => cmp.to_json(),
            None => return error(StatusCode::NOT_FOUND, format!("run #{id} has no report")),
        };
        download(
            body,
            "application/json",
            &format!("flashsale-run-{id}.json"),
        )
    })
}

async fn report_html(State(app): State<Arc<App>>, Path(id): Path<u64>) -> Response {
    with_entry(&app, id, |entry| match &entry.outcome {
        Some(Outcome::Report(report)) => html(report_page(report)),
        Some(Outcome::Comparison(cmp)) => html(comparison_page(cmp)),
        None => error(StatusCode::NOT_FOUND, format!("run #{id} has no report")),
    })
}

/// `?ids=1,2,3`.
#[derive(Debug, Deserialize)]
struct Ids {
    ids: String,
}

impl Ids {
    /// The ids, at most [`MAX_HISTORY`] of them, or why not.
    fn parse(&self) -> Result<Vec<u64>, String> {
        let ids: Result<Vec<u64>, _> = self
            .ids
            .split(',')
            .map(|id| id.trim().trim_start_matches('#').parse::<u64>())
            .collect();
        match ids {
            Ok(ids) if !ids.is_empty() && ids.len() <= MAX_HISTORY => Ok(ids),
            _ => Err(format!(
                "ids must be 1 to {MAX_HISTORY} run numbers separated by commas"
            )),
        }
    }
}

/// The runs of `ids` side by side, or the status and message of why not.
fn comparison_of(app: &App, ids: &Ids) -> Result<Comparison, (StatusCode, String)> {
    let ids = ids.parse().map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    app.history().comparison(&ids).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "every run to compare must be in the history with a report".to_string(),
        )
    })
}

async fn comparison_json(State(app): State<Arc<App>>, Query(ids): Query<Ids>) -> Response {
    match comparison_of(&app, &ids) {
        Ok(cmp) => download(
            cmp.to_json(),
            "application/json",
            "flashsale-comparison.json",
        ),
        Err((status, why)) => error(status, why),
    }
}

async fn comparison_html(State(app): State<Arc<App>>, Query(ids): Query<Ids>) -> Response {
    match comparison_of(&app, &ids) {
        Ok(cmp) => html(comparison_page(&cmp)),
        Err((status, why)) => error(status, why),
    }
}

fn html(page: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

fn download(body: String, content_type: &'static str, name: &str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
