//! The partner portal's texts, in each language.

use crate::web::i18n::messages;

messages! {
    /// Every text of the partner portal's pages.
    pub enum P {
    WebhooksIntro => "Where muster sends what happens to your events, signed to the Standard Webhooks spec.", "이벤트에 일어나는 일을 muster가 Standard Webhooks 규격으로 서명해 보내는 곳입니다.";
    Url => "URL", "URL";
    EventTypes => "Event types", "이벤트 유형";
    State => "State", "상태";
    Created => "Created", "생성";
    Active => "Active", "정상";
    FailingSince => "Failing since", "실패 중, 시작:";
    Disabled => "Disabled", "중지됨";
    NoWebhooks => "No webhook yet.", "아직 웹훅이 없습니다.";
    Create => "Create a webhook", "웹훅 만들기";
    CreateButton => "Create", "만들기";
    UrlHelp => "http(s), a public address.", "http(s), 공개 주소.";
    CreatedTitle => "Webhook created", "웹훅을 만들었습니다";
    RotatedTitle => "Secret rotated", "시크릿을 교체했습니다";
    SecretOnce => "The signing secret is shown this once: store it now.", "서명 시크릿은 지금 한 번만 보입니다. 지금 보관하세요.";
    Secret => "Signing secret", "서명 시크릿";
    Copy => "Copy", "복사";
    Copied => "Copied", "복사됨";
    Verify => "Verify each delivery", "전달마다 검증하기";
    VerifyIntro => "With the Standard Webhooks library of your language: the body as received, and its webhook-id, webhook-timestamp and webhook-signature headers.", "사용하는 언어의 Standard Webhooks 라이브러리로, 받은 본문 그대로와 webhook-id, webhook-timestamp, webhook-signature 헤더를 검증합니다.";
    ToWebhook => "To the webhook and its deliveries", "웹훅과 전달 기록으로";
    Webhook => "Webhook", "웹훅";
    SendTest => "Send a test event", "테스트 이벤트 보내기";
    SendTestHelp => "The type's example message, signed and delivered like any other, marked as a test in the log.", "해당 유형의 예시 메시지를 다른 메시지와 똑같이 서명해 보내고, 기록에 테스트로 표시합니다.";
    Send => "Send", "보내기";
    ChangeTypes => "Change event types", "이벤트 유형 바꾸기";
    Save => "Save", "저장";
    Rotate => "Rotate the secret", "시크릿 교체";
    Grace => "The old secret also signs for", "이전 시크릿도 서명하는 기간";
    GraceNone => "No overlap", "겹침 없음";
    GraceHour => "1 hour", "1시간";
    GraceDay => "24 hours", "24시간";
    RotateButton => "Rotate", "교체";
    PreviousUntil => "Previous secret signs until", "이전 시크릿 서명 종료";
    Enable => "Resume deliveries", "전달 재개";
    Delete => "Delete this webhook", "이 웹훅 삭제";
    DeleteHelp => "Pending deliveries are cancelled; the log is kept.", "대기 중인 전달은 취소되고 기록은 남습니다.";
    DeleteButton => "Delete", "삭제";
    Deliveries => "Deliveries", "전달 기록";
    DeliveriesIntro => "Newest first, updated live.", "최신순, 실시간 갱신.";
    AnyState => "Any state", "모든 상태";
    AnyType => "Any type", "모든 유형";
    Apply => "Apply", "적용";
    Occurred => "Occurred", "발생";
    Type => "Type", "유형";
    Attempts => "Attempts", "시도";
    LastResult => "Last result", "마지막 결과";
    NextAttempt => "Next attempt", "다음 시도";
    Details => "Attempts and payload", "시도와 본문";
    Payload => "Payload", "본문";
    Test => "test", "테스트";
    Replayed => "replay", "재전송";
    Replay => "Replay", "재전송";
    ReplayRange => "Replay a time range", "기간 재전송";
    ReplayRangeHelp => "Every message that occurred in the range is queued again (times in UTC).", "기간 안에 발생한 모든 메시지를 다시 보냅니다 (UTC 기준).";
    From => "From (UTC)", "시작 (UTC)";
    To => "To (UTC)", "끝 (UTC)";
    NoDeliveries => "No delivery matches.", "조건에 맞는 전달이 없습니다.";
    NoAnswer => "no answer", "응답 없음";
    StatePending => "Pending", "대기";
    StateDelivered => "Delivered", "전달됨";
    StateFailed => "Failed", "실패";
    StateCancelled => "Cancelled", "취소";
    CatalogueIntro => "Every event type a webhook can subscribe to, with the JSON Schema of its messages and an example. The same catalogue is at GET /api/partner/webhooks/event-types.", "웹훅이 구독할 수 있는 모든 이벤트 유형과 메시지의 JSON Schema, 예시입니다. 같은 목록이 GET /api/partner/webhooks/event-types 에 있습니다.";
    Schema => "JSON Schema", "JSON Schema";
    Example => "Example", "예시";
    KeyIntro => "The API key this session signed in with.", "이 세션이 로그인한 API 키입니다.";
    Prefix => "Prefix", "접두사";
    Tier => "Tier", "등급";
    Partner => "Partner", "파트너";
    Grants => "Granted events", "허용된 이벤트";
    Limit => "Rate limit", "요청 한도";
    PerSecond => "requests per second, bursts of", "회/초, 순간 최대";
    Remaining => "Left in the bucket now", "지금 남은 요청";
    RotateKey => "Rotate the key", "키 교체";
    RotateKeyHelp => "A new key is shown once. This session moves to it; your systems may keep using the current key for the grace you choose, then it stops working.", "새 키는 한 번만 보여 줍니다. 이 세션은 새 키로 옮겨 갑니다. 기존 키는 고른 유예 시간 동안만 동작합니다.";
    KeyGrace => "Grace for the current key (seconds)", "기존 키 유예 시간 (초)";
    NewKey => "Your new API key", "새 API 키";
    KeyOnce => "Copy it now: it is not shown again.", "지금 복사하세요. 다시 보여 주지 않습니다.";
    OldKeyUntil => "The previous key keeps working for", "기존 키가 동작하는 시간";
    Seconds => "seconds", "초";
    ToKey => "Back to the key", "키 정보로";
    SessionNotMoved => "This session could not move to the new key: sign in again with it before the grace ends.", "이 세션을 새 키로 옮기지 못했습니다. 유예 시간이 끝나기 전에 새 키로 다시 로그인하세요.";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::i18n::{Lang, Text};

    #[test]
    fn every_portal_text_has_both_languages() {
        for m in P::ALL {
            assert!(
                !m.text(Lang::En).is_empty() && !m.text(Lang::Ko).is_empty(),
                "{m:?}"
            );
        }
    }
}
