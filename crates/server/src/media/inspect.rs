//! What an uploaded file is, decided from its bytes alone: the type is sniffed (`infer`), then
//! the whole file must be one well-formed file of that type (a JPEG, PNG or WebP that ends where
//! its structure ends, an MP4/MOV whose boxes or a WebM whose elements cover it exactly), which
//! refuses polyglots. Photos are decoded under a pixel limit, turned upright by their EXIF
//! orientation and re-encoded without any metadata, scaled to at most [`MAX_EDGE`] pixels, with
//! a thumbnail made once. Clips and voice notes keep their bytes; their length is read from the
//! container (from the block timestamps when, as with Chromium's MediaRecorder, the header has
//! none). Everything here is blocking and runs on the blocking pool.

use std::io::{Cursor, Read, Seek};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use wrenchline_protocol::AttachmentKind;

use crate::limits::{Limits, MB};

/// Longest edge of a stored photo, in pixels.
pub const MAX_EDGE: u32 = 4096;
/// Longest edge of a thumbnail, in pixels.
pub const THUMBNAIL_EDGE: u32 = 320;
/// Bytes that decide the type.
pub const SNIFF_BYTES: usize = 4096;

/// The types accepted, as sniffed from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Jpeg,
    Png,
    Webp,
    /// HEIC/HEIF: recognised, and refused (no maintained pure-Rust decoder exists).
    Heif,
    /// ISO base media (MP4, M4A).
    Mp4,
    /// QuickTime.
    Mov,
    WebM,
}

impl Sniffed {
    /// Which limit applies while the file is still arriving: photos' for pictures; for
    /// containers that may hold a clip or a voice note, the larger (the final kind's limit is
    /// applied once the container has been read).
    pub fn max_bytes(self, limits: &Limits, declared_audio: bool) -> u64 {
        match self {
            Sniffed::Jpeg | Sniffed::Png | Sniffed::Webp | Sniffed::Heif => limits.image_max_bytes,
            _ if declared_audio => limits.audio_max_bytes,
            _ => limits.video_max_bytes.max(limits.audio_max_bytes),
        }
    }

    pub fn is_image(self) -> bool {
        matches!(
            self,
            Sniffed::Jpeg | Sniffed::Png | Sniffed::Webp | Sniffed::Heif
        )
    }
}

/// The type of a file from its first bytes (at least [`SNIFF_BYTES`] unless it is shorter).
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    use infer::{audio, image, video};
    if image::is_jpeg(head) {
        Some(Sniffed::Jpeg)
    } else if image::is_png(head) {
        Some(Sniffed::Png)
    } else if image::is_webp(head) {
        Some(Sniffed::Webp)
    } else if image::is_heif(head) {
        Some(Sniffed::Heif)
    } else if video::is_mp4(head) || audio::is_m4a(head) {
        Some(Sniffed::Mp4)
    } else if video::is_mov(head) && head.get(4..8) == Some(b"ftyp") {
        Some(Sniffed::Mov)
    } else if video::is_webm(head) {
        Some(Sniffed::WebM)
    } else {
        None
    }
}

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 415 `unsupported_file_type`.
    Unsupported(String),
    /// 413: over a size, length or pixel limit.
    TooLarge { code: &'static str, message: String },
}

pub fn unsupported() -> Refusal {
    Refusal::Unsupported(
        "Send a photo (JPEG, PNG or WebP), a video clip (MP4, MOV or WebM) or a voice note \
         (WebM/Opus or MP4/AAC)"
            .into(),
    )
}

fn malformed(what: &str) -> Refusal {
    Refusal::Unsupported(format!("This file is not a complete, well-formed {what}"))
}

/// "25 MB"
pub fn megabytes(bytes: u64) -> String {
    if bytes % MB == 0 {
        format!("{} MB", bytes / MB)
    } else {
        format!("{:.1} MB", bytes as f64 / MB as f64)
    }
}

pub fn too_large(kind: AttachmentKind, limits: &Limits) -> Refusal {
    let (what, max) = match kind {
        AttachmentKind::Image => ("Photos", limits.image_max_bytes),
        AttachmentKind::Video => ("Video clips", limits.video_max_bytes),
        AttachmentKind::Audio => ("Voice notes", limits.audio_max_bytes),
    };
    Refusal::TooLarge {
        code: "file_too_large",
        message: format!("{what} are limited to {}", megabytes(max)),
    }
}

/// A photo as it is stored.
#[derive(Debug)]
pub struct Picture {
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
    pub thumbnail: Vec<u8>,
}

/// Decodes a photo under the pixel limit, applies its orientation and re-encodes it (JPEG, or
/// PNG when it has transparency) without metadata, at most [`MAX_EDGE`] on its longer side.
pub fn picture(data: &[u8], sniffed: Sniffed, limits: &Limits) -> Result<Picture, Refusal> {
    let format = match sniffed {
        Sniffed::Jpeg => {
            jpeg_length(data)
                .filter(|&n| n == data.len())
                .ok_or_else(|| malformed("JPEG"))?;
            ImageFormat::Jpeg
        }
        Sniffed::Png => {
            png_length(data)
                .filter(|&n| n == data.len())
                .ok_or_else(|| malformed("PNG"))?;
            ImageFormat::Png
        }
        Sniffed::Webp => {
            riff_length(data)
                .filter(|&n| n == data.len())
                .ok_or_else(|| malformed("WebP"))?;
            ImageFormat::WebP
        }
        Sniffed::Heif => {
            return Err(Refusal::Unsupported(
                "HEIC photos are not accepted yet; send a JPEG (most phones can save or share \
                 photos as JPEG)"
                    .into(),
            ))
        }
        _ => return Err(unsupported()),
    };
    let reader = || {
        let mut reader = ImageReader::with_format(Cursor::new(data), format);
        let mut decode_limits = image::Limits::default();
        let pixels = limits.image_max_pixels;
        decode_limits.max_image_width = Some(u32::try_from(pixels).unwrap_or(u32::MAX));
        decode_limits.max_image_height = Some(u32::try_from(pixels).unwrap_or(u32::MAX));
        // RGBA with 16 bits a channel, plus room for the decoder's own buffers.
        decode_limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(64 * MB));
        reader.limits(decode_limits);
        reader
    };
    let too_many_pixels = || Refusal::TooLarge {
        code: "image_too_large",
        message: format!(
            "Pictures are limited to {} megapixels",
            limits.image_max_pixels as f64 / 1e6
        ),
    };
    let (width, height) = reader().into_dimensions().map_err(|e| match e {
        image::ImageError::Limits(_) => too_many_pixels(),
        _ => malformed("picture"),
    })?;
    if u64::from(width) * u64::from(height) > limits.image_max_pixels {
        return Err(too_many_pixels());
    }
    let mut decoder = reader().into_decoder().map_err(|_| malformed("picture"))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(_) => too_many_pixels(),
        _ => malformed("picture"),
    })?;
    image.apply_orientation(orientation);
    if image.width().max(image.height()) > MAX_EDGE {
        image = image.resize(MAX_EDGE, MAX_EDGE, FilterType::Triangle);
    }
    let (content_type, bytes) = if image.color().has_alpha() {
        ("image/png", encode_png(&image)?)
    } else {
        ("image/jpeg", encode_jpeg(&image, 85)?)
    };
    let thumbnail = encode_jpeg(&image.thumbnail(THUMBNAIL_EDGE, THUMBNAIL_EDGE), 80)?;
    Ok(Picture {
        content_type,
        width: image.width(),
        height: image.height(),
        bytes,
        thumbnail,
    })
}

fn encode_jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&image.to_rgb8())
        .map_err(|_| malformed("picture"))?;
    Ok(out)
}

fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, Refusal> {
    let mut out = Vec::new();
    image
        .to_rgba8()
        .write_with_encoder(PngEncoder::new(&mut out))
        .map_err(|_| malformed("picture"))?;
    Ok(out)
}

/// A still frame (JPEG from `ffmpeg`) turned into a thumbnail the same way as a photo's.
pub fn frame_thumbnail(frame: &[u8]) -> Option<Vec<u8>> {
    let limits = Limits::default();
    let picture = picture(frame, sniff(frame)?, &limits).ok()?;
    Some(picture.thumbnail)
}

/// Where a JPEG's structure ends (just after its EOI marker), walking its segments and
/// entropy-coded data; `None` when it is not a JPEG.
pub fn jpeg_length(data: &[u8]) -> Option<usize> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    loop {
        // Fill bytes may precede a marker.
        while *data.get(i)? == 0xFF && *data.get(i + 1)? == 0xFF {
            i += 1;
        }
        if *data.get(i)? != 0xFF {
            return None;
        }
        let marker = *data.get(i + 1)?;
        i += 2;
        match marker {
            0xD9 => return Some(i),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes([*data.get(i)?, *data.get(i + 1)?]));
        if length < 2 {
            return None;
        }
        i += length;
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is not a stuffed 0x00 or a restart.
            loop {
                if *data.get(i)? == 0xFF {
                    let next = *data.get(i + 1)?;
                    if next == 0x00 || (0xD0..=0xD7).contains(&next) {
                        i += 2;
                        continue;
                    }
                    if next == 0xFF {
                        i += 1;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
        }
    }
}

/// Where a PNG ends (after its IEND chunk).
pub fn png_length(data: &[u8]) -> Option<usize> {
    if data.get(..8)? != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    let mut i = 8;
    loop {
        let length = u32::from_be_bytes(data.get(i..i + 4)?.try_into().ok()?) as usize;
        let kind = data.get(i + 4..i + 8)?;
        i = i.checked_add(12)?.checked_add(length)?;
        if i > data.len() {
            return None;
        }
        if kind == b"IEND" {
            return Some(i);
        }
    }
}

/// Where a RIFF file (WebP) ends, by its header.
pub fn riff_length(data: &[u8]) -> Option<usize> {
    if data.get(..4)? != b"RIFF" || data.get(8..12)? != b"WEBP" {
        return None;
    }
    let size = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?) as usize;
    Some(size + 8 + (size & 1))
}

/// What a clip or a voice note is, read from its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub kind: AttachmentKind,
    pub content_type: &'static str,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: u64,
}

/// Reads a clip or voice note at `path` (of `len` bytes): the container must cover the whole
/// file, have a video or an audio track and state or imply its length, which must be within the
/// kind's limits (size too).
pub fn recording(
    path: &Path,
    len: u64,
    sniffed: Sniffed,
    limits: &Limits,
) -> Result<Recording, Refusal> {
    let file = std::fs::File::open(path).map_err(|_| unsupported())?;
    let mut file = std::io::BufReader::with_capacity(256 * 1024, file);
    let recording = match sniffed {
        Sniffed::Mp4 | Sniffed::Mov => {
            if !isobmff_covers(&mut file, len) {
                return Err(malformed(if sniffed == Sniffed::Mov {
                    "QuickTime movie"
                } else {
                    "MP4 file"
                }));
            }
            file.rewind().map_err(|_| unsupported())?;
            mp4_recording(&mut file, sniffed)?
        }
        Sniffed::WebM => {
            if !ebml_covers(&mut file, len) {
                return Err(malformed("WebM file"));
            }
            file.rewind().map_err(|_| unsupported())?;
            webm_recording(file)?
        }
        _ => return Err(unsupported()),
    };
    let (max_bytes, max_seconds, what) = match recording.kind {
        AttachmentKind::Video => (
            limits.video_max_bytes,
            limits.video_max_seconds,
            "Video clips",
        ),
        _ => (
            limits.audio_max_bytes,
            limits.audio_max_seconds,
            "Voice notes",
        ),
    };
    if len > max_bytes {
        return Err(too_large(recording.kind, limits));
    }
    if recording.duration_ms > max_seconds * 1000 {
        let limit = if max_seconds % 60 == 0 && max_seconds >= 120 {
            format!("{} minutes", max_seconds / 60)
        } else {
            format!("{max_seconds} seconds")
        };
        return Err(Refusal::TooLarge {
            code: "too_long",
            message: format!("{what} are limited to {limit}"),
        });
    }
    Ok(recording)
}

fn read_exact<const N: usize>(file: &mut impl Read) -> Option<[u8; N]> {
    let mut buf = [0u8; N];
    file.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// Whether the top-level boxes of an ISO base media file (MP4, MOV) cover exactly `len` bytes.
fn isobmff_covers(file: &mut (impl Read + Seek), len: u64) -> bool {
    let mut at = 0u64;
    let mut boxes = 0;
    while at < len {
        let Some(head) = read_exact::<8>(file) else {
            return false;
        };
        let size32 = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
        if !head[4..8]
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == 0xA9)
        {
            return false;
        }
        let size = match size32 {
            0 => len - at,
            1 => match read_exact::<8>(file) {
                Some(large) => u64::from_be_bytes(large),
                None => return false,
            },
            n => u64::from(n),
        };
        let header = if size32 == 1 { 16 } else { 8 };
        if size < header || at + size > len {
            return false;
        }
        at += size;
        boxes += 1;
        if file.seek(std::io::SeekFrom::Start(at)).is_err() {
            return false;
        }
    }
    boxes > 0 && at == len
}

fn mp4_recording(file: &mut impl Read, sniffed: Sniffed) -> Result<Recording, Refusal> {
    use mp4parse::TrackType;
    let context = mp4parse::read_mp4(file).map_err(|_| malformed("MP4 file"))?;
    let mut duration_ms = 0u64;
    let mut video = None;
    let mut audio = false;
    for track in context.tracks.iter() {
        match track.track_type {
            TrackType::Video => {
                let size = track.tkhd.as_ref().map(|t| (t.width >> 16, t.height >> 16));
                video = video.or(Some(size));
            }
            TrackType::Audio => audio = true,
            _ => continue,
        }
        if let (Some(duration), Some(scale)) = (&track.duration, &track.timescale) {
            if let Some(ms) = duration.0.saturating_mul(1000).checked_div(scale.0) {
                duration_ms = duration_ms.max(ms);
            }
        }
    }
    if duration_ms == 0 {
        // A fragmented file states its length in its movie extends box.
        let fragment = context.mvex.as_ref().and_then(|m| m.fragment_duration);
        if let (Some(duration), Some(scale)) = (fragment, context.timescale) {
            if let Some(ms) = duration.0.saturating_mul(1000).checked_div(scale.0) {
                duration_ms = ms;
            }
        }
    }
    let (kind, content_type, size) = match (video, audio) {
        (Some(size), _) => (
            AttachmentKind::Video,
            if sniffed == Sniffed::Mov {
                "video/quicktime"
            } else {
                "video/mp4"
            },
            size,
        ),
        (None, true) => (AttachmentKind::Audio, "audio/mp4", None),
        (None, false) => return Err(unsupported()),
    };
    if duration_ms == 0 {
        return Err(Refusal::Unsupported(
            "The length of this recording cannot be read from the file".into(),
        ));
    }
    Ok(Recording {
        kind,
        content_type,
        width: size.map(|s| s.0).filter(|w| *w > 0),
        height: size.map(|s| s.1).filter(|h| *h > 0),
        duration_ms,
    })
}

/// An EBML variable-length integer: (value, length); all-ones values (unknown size) are `None`.
fn ebml_vint(file: &mut impl Read, keep_marker: bool) -> Option<(Option<u64>, usize)> {
    let [first] = read_exact::<1>(file)?;
    let length = first.leading_zeros() as usize + 1;
    if length > 8 {
        return None;
    }
    let mut value = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & ((1u64 << (8 - length)) - 1)
    };
    let mut all_ones = value == (1u64 << (8 - length)) - 1;
    for _ in 1..length {
        let [byte] = read_exact::<1>(file)?;
        all_ones &= byte == 0xFF;
        value = (value << 8) | u64::from(byte);
    }
    Some(((keep_marker || !all_ones).then_some(value), length))
}

/// Whether a WebM file is one EBML header and one segment, ending exactly at `len` (a segment of
/// unknown size, as a live recorder writes it, runs to the end).
fn ebml_covers(file: &mut (impl Read + Seek), len: u64) -> bool {
    const EBML: u64 = 0x1A45_DFA3;
    const SEGMENT: u64 = 0x1853_8067;
    let mut at = 0u64;
    let mut expected = [EBML, SEGMENT].into_iter();
    while at < len {
        let Some(want) = expected.next() else {
            return false;
        };
        let Some((Some(id), id_len)) = ebml_vint(file, true) else {
            return false;
        };
        let Some((size, size_len)) = ebml_vint(file, false) else {
            return false;
        };
        if id != want {
            return false;
        }
        let header = (id_len + size_len) as u64;
        let end = match size {
            Some(size) => at + header + size,
            None if id == SEGMENT => len,
            None => return false,
        };
        if end > len {
            return false;
        }
        at = end;
        if file.seek(std::io::SeekFrom::Start(at)).is_err() {
            return false;
        }
    }
    at == len && expected.next().is_none()
}

fn webm_recording(file: impl Read + Seek) -> Result<Recording, Refusal> {
    use matroska_demuxer::{Frame, MatroskaFile, TrackType};
    let mut webm = MatroskaFile::open(file).map_err(|_| malformed("WebM file"))?;
    let video = webm
        .tracks()
        .iter()
        .find(|t| t.track_type() == TrackType::Video)
        .map(|t| {
            t.video()
                .map(|v| (v.pixel_width().get(), v.pixel_height().get()))
        });
    let audio = webm
        .tracks()
        .iter()
        .any(|t| t.track_type() == TrackType::Audio);
    let scale = webm.info().timestamp_scale().get();
    let stated_ns = webm
        .info()
        .duration()
        .map(|d| (d * scale as f64) as u64)
        .unwrap_or(0);
    // The header's duration is missing in live recordings: the last block's timestamp says it.
    let mut frame = Frame::default();
    let mut last = 0u64;
    loop {
        match webm.next_frame(&mut frame) {
            Ok(true) => last = last.max(frame.timestamp),
            Ok(false) => break,
            Err(_) => return Err(malformed("WebM file")),
        }
    }
    let duration_ms = stated_ns.max(last.saturating_mul(scale)) / 1_000_000;
    let (kind, content_type, size) = match (video, audio) {
        (Some(size), _) => (AttachmentKind::Video, "video/webm", size),
        (None, true) => (AttachmentKind::Audio, "audio/webm", None),
        (None, false) => return Err(unsupported()),
    };
    let dimension = |v: u64| u32::try_from(v).ok().filter(|v| *v > 0);
    Ok(Recording {
        kind,
        content_type,
        width: size.and_then(|s| dimension(s.0)),
        height: size.and_then(|s| dimension(s.1)),
        duration_ms: duration_ms.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_after_a_picture_are_found() {
        let mut jpeg = Vec::new();
        JpegEncoder::new(&mut jpeg)
            .encode_image(&image::RgbImage::new(16, 8))
            .unwrap();
        assert_eq!(jpeg_length(&jpeg), Some(jpeg.len()));
        let mut polyglot = jpeg.clone();
        polyglot.extend_from_slice(b"PK\x03\x04 a zip file");
        assert_eq!(jpeg_length(&polyglot), Some(jpeg.len()));
        let mut png = Vec::new();
        image::RgbImage::new(4, 4)
            .write_with_encoder(PngEncoder::new(&mut png))
            .unwrap();
        assert_eq!(png_length(&png), Some(png.len()));
    }

    #[test]
    fn sizes_print_as_megabytes() {
        assert_eq!(megabytes(25 * MB), "25 MB");
        assert_eq!(megabytes(1_500_000), "1.5 MB");
    }
}
