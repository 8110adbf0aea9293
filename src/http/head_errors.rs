//! The documented JSON error for requests hyper rejects before the router sees them.
//!
//! When hyper's HTTP/1 parser refuses a request head (bad request line, bare CR, invalid or
//! conflicting `Content-Length` headers, a head over `max_buf_size`), hyper answers by
//! itself: `400`/`431`/`414` with `content-length: 0` and no other header, then closes. It
//! has no hook for that answer, so [`JsonHeadErrors`] sits between hyper and the socket
//! (plain or TLS) and recognises it: hyper's answer is a complete response head, with no
//! headers but `content-length: 0`, `date` and `connection`, written as the tail of a
//! write. Such a write is held back rather than sent. If hyper then shuts the connection
//! down, that was the automatic answer (hyper writes nothing after it), and the JSON error
//! with the security headers is sent in its place. If hyper instead reads or writes again,
//! the held bytes were something else and go out unchanged, in order; so a response body
//! that happens to look like such a head is delayed, never altered.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderName, HeaderValue, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::ApiError;
use crate::error::ErrorKind;

/// Longest automatic answer hyper writes (status line, content-length, date, connection).
const MAX_AUTO_ANSWER: usize = 160;

/// The headers every replacement answer carries.
pub(super) struct Answers {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Answers {
    pub(super) fn new(security: Vec<(HeaderName, HeaderValue)>) -> Arc<Answers> {
        Arc::new(Answers { headers: security })
    }

    /// The full JSON answer for hyper's automatic `status`, keeping its `date`.
    fn render(&self, status: u16, date: Option<&[u8]>) -> Vec<u8> {
        let err = match status {
            431 | 414 => ApiError::new(
                ErrorKind::HeadTooLarge,
                "request line and headers are too large: together they must fit in 64 KiB",
            ),
            _ => ApiError::invalid(
                "malformed HTTP request: the request line or a header cannot be parsed (for \
                 example a bare CR, an invalid header name or value, or several differing \
                 Content-Length headers)",
            ),
        };
        let (status, body) = err.status_and_body();
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut out = Vec::with_capacity(512 + body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(
            status
                .canonical_reason()
                .unwrap_or_else(|| StatusCode::BAD_REQUEST.canonical_reason().unwrap_or(""))
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\nconnection: close\r\ncache-control: no-store\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(d) = date {
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(d);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        out
    }
}

/// Where in `buf` hyper's automatic error answer starts, if `buf` ends with one, with its
/// status and `date` value.
fn auto_answer(buf: &[u8]) -> Option<(usize, u16, Option<Vec<u8>>)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = buf.len().saturating_sub(MAX_AUTO_ANSWER);
    let start = from + rfind(&buf[from..], b"HTTP/1.1 ")?;
    let tail = &buf[start..];
    let mut headers = [httparse::EMPTY_HEADER; 4];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(tail) {
        Ok(httparse::Status::Complete(n)) if n == tail.len() => {}
        _ => return None,
    }
    let status = resp.code?;
    if !matches!(status, 400 | 414 | 431) {
        return None;
    }
    let mut zero_length = false;
    let mut date = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            zero_length = h.value == b"0";
        } else if h.name.eq_ignore_ascii_case("date") {
            date = Some(h.value.to_vec());
        } else if !h.name.eq_ignore_ascii_case("connection") {
            return None;
        }
    }
    zero_length.then_some((start, status, date))
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

enum Held {
    None,
    /// A write that may be hyper's automatic answer: its bytes, how many are sent, status
    /// and date.
    Candidate {
        bytes: Vec<u8>,
        sent: usize,
        status: u16,
        date: Option<Vec<u8>>,
    },
    /// The JSON answer being written at shutdown, and how much of it is out.
    Replacing {
        bytes: Vec<u8>,
        sent: usize,
    },
}

/// An IO that answers hyper's bodiless parse-error responses with the JSON error.
pub(super) struct JsonHeadErrors<I> {
    inner: I,
    held: Held,
    answers: Arc<Answers>,
}

impl<I> JsonHeadErrors<I> {
    pub(super) fn new(inner: I, answers: Arc<Answers>) -> Self {
        JsonHeadErrors {
            inner,
            held: Held::None,
            answers,
        }
    }
}

impl<I: AsyncWrite + Unpin> JsonHeadErrors<I> {
    /// Sends a held candidate unchanged: hyper went on, so it was not its last write.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Held::Candidate { bytes, sent, .. } = &mut self.held {
            if *sent == bytes.len() {
                self.held = Held::None;
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Holds `buf` if it ends with the automatic answer: returns how many bytes of `buf`
    /// may be passed on now (those before the answer), or `None` if there is no answer.
    fn split_candidate(&mut self, buf: &[u8]) -> Option<usize> {
        let (start, status, date) = auto_answer(buf)?;
        if start == 0 {
            self.held = Held::Candidate {
                bytes: buf.to_vec(),
                sent: 0,
                status,
                date,
            };
        }
        Some(start)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncRead for JsonHeadErrors<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonHeadErrors<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        match this.split_candidate(buf) {
            Some(0) => Poll::Ready(Ok(buf.len())),
            Some(before) => Pin::new(&mut this.inner).poll_write(cx, &buf[..before]),
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        // hyper writes its automatic answer as one slice of its own: look at the last
        // non-empty one, and send what comes before it first.
        let Some(last) = bufs.iter().rposition(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        if bufs[..last].iter().all(|b| b.is_empty()) {
            return match this.split_candidate(&bufs[last]) {
                Some(0) => Poll::Ready(Ok(bufs[last].len())),
                Some(before) => Pin::new(&mut this.inner).poll_write(cx, &bufs[last][..before]),
                None => Pin::new(&mut this.inner).poll_write(cx, &bufs[last]),
            };
        }
        if auto_answer(&bufs[last]).is_some() {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs[..last]);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A held candidate stays held: only what follows it decides what it was.
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Held::Candidate {
            status, date, sent, ..
        } = &this.held
        {
            if *sent == 0 {
                let bytes = this.answers.render(*status, date.as_deref());
                this.held = Held::Replacing { bytes, sent: 0 };
            } else {
                ready!(this.poll_release(cx))?;
            }
        }
        while let Held::Replacing { bytes, sent } = &mut this.held {
            if *sent == bytes.len() {
                this.held = Held::None;
                break;
            }
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTO: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 12:00:00 GMT\r\n\r\n";

    #[test]
    fn recognises_only_hypers_bodiless_answer_at_the_end() {
        assert_eq!(auto_answer(AUTO).map(|a| (a.0, a.1)), Some((0, 400)));
        let mut joined = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
        let at = joined.len();
        joined.extend_from_slice(AUTO);
        assert_eq!(auto_answer(&joined).map(|a| a.0), Some(at));
        let big = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        assert_eq!(auto_answer(big).map(|a| a.1), Some(431));
        for not in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-content-type-options: nosniff\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nx",
        ] {
            assert!(auto_answer(not).is_none(), "{}", String::from_utf8_lossy(not));
        }
    }

    #[test]
    fn the_replacement_is_the_json_error_with_the_headers() {
        let a = Answers::new(super::super::middleware::security_headers(false));
        let out = a.render(431, Some(b"Mon, 07 Dec 2026 12:00:00 GMT"));
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(
            head.contains("\r\nx-content-type-options: nosniff\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        assert!(head.contains("\r\ndate: Mon, 07 Dec 2026 12:00:00 GMT"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "head_too_large");
    }

    #[tokio::test]
    async fn held_bytes_go_out_unchanged_when_hyper_goes_on() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(4096);
        let a = Answers::new(Vec::new());
        let mut io = JsonHeadErrors::new(server, a.clone());
        io.write_all(AUTO).await.unwrap();
        io.write_all(b"more").await.unwrap();
        drop(io);
        let mut c = client;
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, [AUTO, b"more"].concat());

        let (client, server) = tokio::io::duplex(4096);
        let mut io = JsonHeadErrors::new(server, a);
        io.write_all(AUTO).await.unwrap();
        io.flush().await.unwrap();
        io.shutdown().await.unwrap();
        let mut c = client;
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        let text = String::from_utf8(got).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("\"invalid_input\""), "{text}");
    }
}
