//! The console's texts, in each language.

use crate::web::i18n::messages;

messages! {
    /// Every text of the admin's console.
    pub enum AdminMsg {
    PartnersIntro => "Partners and their API keys: what each may see, its keys, and its webhooks' delivery health.", "파트너와 API 키: 각 파트너가 볼 수 있는 이벤트, 키, 웹훅 전송 상태입니다.";
    NoPartners => "No partner yet.", "아직 파트너가 없습니다.";
    CreatePartner => "Create a partner", "파트너 만들기";
    Name => "Name", "이름";
    Tier => "Tier", "등급";
    GrantedEvents => "Granted events", "허용된 이벤트";
    NoKnownEvents => "No event is registered yet.", "등록된 이벤트가 아직 없습니다.";
    Create => "Create", "만들기";
    KeyOnce => "Copy this key now: it is shown only this once.", "이 키를 지금 복사하세요. 한 번만 표시됩니다.";
    NewKey => "API key", "API 키";
    Keys => "Keys", "키";
    KeyPrefix => "Key prefix", "키 접두사";
    CreatedAt => "Created", "생성";
    Ends => "Ends", "만료";
    State => "State", "상태";
    Active => "active", "활성";
    Revoked => "revoked", "폐기됨";
    SaveGrants => "Save grants", "허용 이벤트 저장";
    Rotate => "Rotate the key", "키 교체";
    Grace => "Previous keys keep working for (seconds)", "이전 키 유지 시간(초)";
    Revoke => "Revoke the partner", "파트너 폐기";
    RevokeNote => "Every key of this partner stops working at once.", "이 파트너의 모든 키가 즉시 작동을 멈춥니다.";
    Webhooks => "Webhook endpoints", "웹훅 엔드포인트";
    NoWebhooks => "No webhook endpoint.", "웹훅 엔드포인트가 없습니다.";
    Url => "URL", "URL";
    EventTypes => "Event types", "이벤트 유형";
    Pending => "Pending", "대기";
    Delivered => "Delivered", "전송됨";
    Failed => "Failed", "실패";
    Cancelled => "Cancelled", "취소됨";
    FailingSince => "Failing since", "실패 시작";
    Disabled => "Disabled", "비활성화됨";
    Healthy => "healthy", "정상";
    Back => "Back to the partners", "파트너 목록으로";
    RegisterService => "Register or update a service", "서비스 등록 또는 수정";
    Registration => "Registration (JSON, as POST /api/admin/services takes it)", "등록 정보 (POST /api/admin/services와 같은 JSON)";
    RegistrationNote => "The service's health check must pass, or nothing is saved. Credentials are never shown again: give them anew when editing.", "서비스 상태 확인을 통과해야 저장됩니다. 인증 정보는 다시 표시되지 않으니 수정할 때 다시 입력하세요.";
    Register => "Register", "등록";
    Registered => "Service registered", "서비스 등록됨";
    Updated => "Service updated", "서비스 수정됨";
    WebhookSecretOnce => "Secret for pushed check-ins: copy it now, it is shown only this once.", "체크인 푸시용 비밀 값: 지금 복사하세요. 한 번만 표시됩니다.";
    WebhookSecret => "Webhook secret", "웹훅 비밀 값";
    InitialSync => "First snapshot", "첫 스냅숏";
    InitialSyncOk => "taken", "수집됨";
    Remove => "Remove the service", "서비스 삭제";
    AuditIntro => "Every admin and partner-management action, newest first.", "모든 관리자 및 파트너 관리 작업 (최신순).";
    When => "When", "시각";
    Actor => "Actor", "수행자";
    Action => "Action", "작업";
    Subject => "Subject", "대상";
    Details => "Details", "세부 정보";
    AnyAction => "Any action", "모든 작업";
    ActorFilter => "Actor (admin or a partner id)", "수행자 (admin 또는 파트너 ID)";
    From => "From (UTC)", "시작 (UTC)";
    To => "Until (UTC)", "끝 (UTC)";
    Filter => "Filter", "필터";
    NoEntries => "Nothing recorded matches.", "조건에 맞는 기록이 없습니다.";
    Older => "Older", "이전 항목";
    Admin => "admin", "관리자";
    DeadLettersIntro => "Records a stage could not process, newest first: why, where they came from, and their bytes as received.", "단계에서 처리하지 못한 레코드 (최신순): 사유, 출처, 받은 그대로의 바이트.";
    Stage => "Stage", "단계";
    AnyStage => "Any stage", "모든 단계";
    EventId => "Event id", "이벤트 ID";
    Source => "Source", "출처";
    Bytes => "Original bytes", "원본 바이트";
    Length => "bytes", "바이트";
    Printable => "Text (other bytes as ·)", "텍스트 (그 밖의 바이트는 ·)";
    Hex => "Hex", "16진수";
    Truncated => "first bytes only", "앞부분만 표시";
    NoDeadLetters => "No dead letter matches.", "조건에 맞는 데드 레터가 없습니다.";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::i18n::Lang;

    #[test]
    fn every_text_is_written_in_each_language() {
        for m in AdminMsg::ALL {
            for lang in Lang::ALL {
                assert!(!lang.t(*m).trim().is_empty(), "{m:?} in {lang:?}");
            }
        }
    }
}
