//! A WHEP client's SDP offer, checked before anything is allocated: it
//! must want to receive video, and offer H.264 in packetization mode 1 (the
//! mode that fragments a frame over several packets; mode 0 needs every
//! slice under the MTU, which no encoder here promises). Of the H.264
//! formats offered, the one whose profile matches what the encoder makes
//! is chosen; its payload type is what this peer's packets carry.

use crate::config::H264Profile;

/// What the offer asks for, as far as edgecam cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub sdp: gst_sdp::SDPMessage,
    /// The payload type to send H.264 with.
    pub payload: u32,
}

/// Why an offer cannot be answered, for a 400 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the body is not an SDP offer ({0})")]
    NotSdp(String),
    #[error("the offer has no video to receive (edgecam sends video only)")]
    NoVideo,
    #[error("the offer does not receive video (its video is {0}); offer recvonly or sendrecv")]
    NotReceiving(&'static str),
    #[error("the offer has no H.264 in packetization-mode 1 (it offers {0}); edgecam sends H.264")]
    NoH264(String),
}

/// Checks `text` and chooses the H.264 format to send, preferring the
/// profile the encoder makes (`None`: a camera's own H.264, of unknown
/// profile).
pub fn check(text: &str, profile: Option<H264Profile>) -> Result<Offer, Refusal> {
    let sdp = gst_sdp::SDPMessage::parse_buffer(text.as_bytes())
        .map_err(|err| Refusal::NotSdp(err.to_string()))?;
    if !text.trim_start().starts_with("v=0") {
        return Err(Refusal::NotSdp("it does not start with v=0".to_owned()));
    }
    let video = sdp
        .medias()
        .find(|media| media.media() == Some("video") && media.port() != 0)
        .ok_or(Refusal::NoVideo)?;
    for direction in ["sendonly", "inactive"] {
        if video.attribute_val(direction).is_some() {
            return Err(Refusal::NotReceiving(direction));
        }
    }
    let mut offered = Vec::new();
    let mut best: Option<(u32, u32)> = None;
    for format in video.formats() {
        let Ok(payload) = format.parse::<u32>() else {
            continue;
        };
        let Some(caps) = video.caps_from_media(payload as i32) else {
            continue;
        };
        let Some(structure) = caps.structure(0) else {
            continue;
        };
        let encoding = structure.get::<String>("encoding-name").unwrap_or_default();
        if !offered.contains(&encoding) {
            offered.push(encoding.clone());
        }
        let mode = structure
            .get::<String>("packetization-mode")
            .unwrap_or_else(|_| "0".to_owned());
        if !encoding.eq_ignore_ascii_case("H264") || mode != "1" {
            continue;
        }
        // GStreamer reads profile-level-id into a profile name.
        let offered_profile = structure.get::<String>("profile").ok();
        let score = fit(offered_profile.as_deref(), profile);
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((payload, score));
        }
    }
    let Some((payload, _)) = best else {
        return Err(Refusal::NoH264(offered.join(", ")));
    };
    Ok(Offer { sdp, payload })
}

/// How well an offered profile fits what is sent: the same profile best
/// (edgecam's baseline is constrained baseline, which a baseline decoder
/// takes too), any H.264 last.
fn fit(offered: Option<&str>, profile: Option<H264Profile>) -> u32 {
    let wanted = match profile {
        Some(H264Profile::Baseline) | None => "constrained-baseline",
        Some(H264Profile::Main) => "main",
        Some(H264Profile::High) => "high",
    };
    match offered {
        Some(offered) if offered == wanted => 4,
        Some("baseline") if wanted == "constrained-baseline" => 3,
        None => 2,
        Some(_) => 1,
    }
}

/// The answer's `fmtp` for what is sent: packetization mode 1 and the
/// `profile-level-id` of the encoder's stream — its profile, and the level
/// the camera's size and rate need (H.264 table A-1: macroblocks per frame
/// and per second).
pub fn answer_fmtp(profile: H264Profile, width: u32, height: u32, fps: u32) -> String {
    let profile = match profile {
        // constraint_set1: constrained baseline.
        H264Profile::Baseline => "42e0",
        H264Profile::Main => "4d00",
        H264Profile::High => "6400",
    };
    let frame = width.div_ceil(16) * height.div_ceil(16);
    let rate = frame * fps;
    const LEVELS: [(u32, u32, u32); 13] = [
        // (level_idc, max macroblocks per frame, max macroblocks per second)
        (0x0b, 396, 3_000),
        (0x0c, 396, 6_000),
        (0x0d, 396, 11_880),
        (0x15, 792, 19_800),
        (0x16, 1_620, 20_250),
        (0x1e, 1_620, 40_500),
        (0x1f, 3_600, 108_000),
        (0x20, 5_120, 216_000),
        (0x28, 8_192, 245_760),
        (0x2a, 8_704, 522_240),
        (0x32, 22_080, 589_824),
        (0x33, 36_864, 983_040),
        (0x34, 36_864, 2_073_600),
    ];
    let level = LEVELS
        .iter()
        .find(|(_, frame_max, rate_max)| frame <= *frame_max && rate <= *rate_max)
        .map_or(0x34, |(level, _, _)| *level);
    format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}{level:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The video part of what Chromium offers for a recvonly transceiver.
    const CHROMIUM: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 102 104 106 127 112\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:104 H264/90000\r\n\
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
a=rtpmap:106 H264/90000\r\n\
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:127 H264/90000\r\n\
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
a=rtpmap:112 H264/90000\r\n\
a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n";

    #[test]
    fn the_format_matching_the_encoders_profile_is_chosen() {
        gst::init().unwrap();
        let chosen = |profile| check(CHROMIUM, profile).map(|o| o.payload);
        assert_eq!(chosen(Some(H264Profile::Baseline)), Ok(106));
        assert_eq!(chosen(Some(H264Profile::Main)), Ok(127));
        assert_eq!(chosen(Some(H264Profile::High)), Ok(112));
        assert_eq!(chosen(None), Ok(106));
    }

    #[test]
    fn the_answer_names_the_level_the_picture_needs() {
        let fmtp = |w, h, fps| answer_fmtp(H264Profile::Baseline, w, h, fps);
        assert!(fmtp(1280, 720, 30).ends_with("profile-level-id=42e01f"));
        assert!(fmtp(1920, 1080, 30).ends_with("profile-level-id=42e028"));
        assert!(fmtp(640, 360, 30).ends_with("profile-level-id=42e01e"));
        assert!(answer_fmtp(H264Profile::High, 1920, 1080, 60).ends_with("=64002a"));
    }

    #[test]
    fn offers_that_cannot_be_answered_say_why() {
        gst::init().unwrap();
        assert!(matches!(check("hello", None), Err(Refusal::NotSdp(_))));
        let audio_only = CHROMIUM.replace("m=video", "m=audio");
        assert_eq!(check(&audio_only, None), Err(Refusal::NoVideo));
        let sending = CHROMIUM.replace("a=recvonly", "a=sendonly");
        assert_eq!(
            check(&sending, None),
            Err(Refusal::NotReceiving("sendonly"))
        );
        let vp8_only = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n\
            a=rtpmap:96 VP8/90000\r\n";
        assert_eq!(
            check(vp8_only, None),
            Err(Refusal::NoH264("VP8".to_owned()))
        );
    }
}
