//! Request bodies: read only once the headers are accepted (mcp-transport.md §2.1),
//! under the size cap and a deadline; and refusals that leave a body unread, sent so
//! that the connection closes instead of waiting for the rest.

use super::error::ApiError;
use crate::mcp::jsonrpc::RpcError;
use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

fn too_large(limit: usize) -> ApiError {
    ApiError::rpc(
        StatusCode::PAYLOAD_TOO_LARGE,
        RpcError::server(format!(
            "Payload Too Large: the body exceeds {limit} bytes (max_body_bytes)"
        )),
    )
    .close_connection()
}

/// 413 when `Content-Length` already announces more than `limit` bytes: decided
/// from the headers, before any body byte is read.
pub(crate) fn check_length(req: &HttpRequest, limit: usize) -> Result<(), ApiError> {
    let announced = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(len) if len > limit as u64 => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// The whole body: at most `limit` bytes (a chunked body growing past it gets 413),
/// all of it within `timeout` (else 408). Both refusals close the connection.
pub(crate) async fn read(
    payload: &mut web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::rpc(
                    StatusCode::BAD_REQUEST,
                    RpcError::server(format!("Bad Request: {e}")),
                )
                .close_connection()
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(body) => body,
        Err(_) => {
            tracing::info!(
                timeout_secs = timeout.as_secs(),
                "request body not received in time; closing the connection"
            );
            Err(ApiError::rpc(
                StatusCode::REQUEST_TIMEOUT,
                RpcError::server(format!(
                    "Request Timeout: the body did not arrive within {} s (body_read_timeout_secs)",
                    timeout.as_secs()
                )),
            )
            .close_connection())
        }
    }
}

/// The response to `e`, given while the request body is (partly) unread. actix-http
/// closes the connection after a response when the body is unread and still owned by
/// someone, but drains a dropped chunked body for as long as the client sends it; so
/// the response body holds `payload` until it has been written.
pub(crate) fn refuse(e: &impl ResponseError, payload: web::Payload) -> HttpResponse {
    refuse_with(e.error_response(), payload)
}

/// [`refuse`] with a response already built.
pub(crate) fn refuse_with(resp: HttpResponse, payload: web::Payload) -> HttpResponse {
    let (resp, body) = resp.into_parts();
    let bytes = body.try_into_bytes().unwrap_or_default();
    resp.set_body(KeepUnread {
        len: bytes.len() as u64,
        bytes: Some(bytes),
        _payload: payload,
    })
    .map_into_boxed_body()
}

/// A fixed response body that keeps the request's payload alive while it is sent.
struct KeepUnread {
    len: u64,
    bytes: Option<Bytes>,
    _payload: web::Payload,
}

impl MessageBody for KeepUnread {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.len)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(self.get_mut().bytes.take().map(Ok))
    }
}
