//! The analyst pages' texts, in each language.

use crate::web::i18n::messages;

messages! {
    /// Every text of the analyst pages.
    pub enum A {
    SqlIntro => "One read-only query (DataFusion SQL) over the same tables and limits as POST /api/premium/sql: a partner key sees its own events only.", "POST /api/premium/sql 과 같은 테이블과 한도로 읽기 전용 쿼리(DataFusion SQL) 하나를 실행합니다. 파트너 키는 자기 이벤트만 봅니다.";
    Query => "Query", "쿼리";
    Run => "Run", "실행";
    DownloadCsv => "Download CSV", "CSV 내려받기";
    DownloadParquet => "Download Parquet", "Parquet 내려받기";
    Answer => "Answer", "결과";
    Rows => "rows", "행";
    OneRow => "row", "행";
    Truncated => "More rows matched: only the first are shown (the API's row limit).", "더 많은 행이 일치했습니다. 처음 일부만 보입니다 (API 행 한도).";
    NoRows => "No row matched.", "일치하는 행이 없습니다.";
    Tables => "Tables", "테이블";
    TablesIntro => "What a query may name, with each table's columns.", "쿼리에서 쓸 수 있는 테이블과 각 테이블의 열입니다.";
    Column => "Column", "열";
    Type => "Type", "유형";
    PatternsIntro => "Attendance rate by local weekday and hour for one event type, across every event of the type (each event in its own time zone). Hover a cell for its sample size and its change against the period before.", "이벤트 유형 하나의 요일·시간대별(각 이벤트의 현지 시간) 참석률입니다. 칸에 마우스를 올리면 표본 수와 이전 기간 대비 변화가 보입니다.";
    MinEvents => "Cells drawn from fewer events than this are left out:", "이보다 적은 이벤트로 계산된 칸은 보이지 않습니다:";
    ComputedAt => "Computed", "계산 시각";
    EventType => "Event type", "이벤트 유형";
    Show => "Show", "보기";
    NoPatterns => "No pattern yet: the insights have not been computed, or too few events.", "아직 패턴이 없습니다. 인사이트가 계산되지 않았거나 이벤트가 너무 적습니다.";
    HeatmapCaption => "Attendance rate by local weekday and hour:", "현지 요일·시간대별 참석률:";
    Day => "Day", "요일";
    NoData => "No data", "데이터 없음";
    Legend => "Colours", "색상";
    Points => " pts", "%p";
    VsPrevious => "against the period before", "이전 기간 대비";
    NoPrevious => "no figure for the period before", "이전 기간 수치 없음";
    Rate => "Attendance rate", "참석률";
    EventHours => "event-hours", "이벤트-시간";
    Events => "events", "개 이벤트";
    ForecastsIntro => "Each upcoming or ongoing event's forecast with its 90 % interval, beside the method's error on past events (its backtest); then revenue against cost per event and per type.", "진행 예정이거나 진행 중인 이벤트마다 예측과 그 구간, 과거 이벤트에 대한 방법의 오차(백테스트), 그리고 이벤트별·유형별 수익 대비 비용입니다.";
    ForecastsTitle => "Forecasts", "예측";
    NoForecasts => "No forecast yet.", "아직 예측이 없습니다.";
    Event => "Event", "이벤트";
    Phase => "Phase", "단계";
    Registered => "Registered", "등록";
    FinalAttendance => "Final attendance (interval)", "최종 참석 (구간)";
    ShowUpRate => "Show-up rate (interval)", "참석률 (구간)";
    Peak => "Peak inside (interval)", "최대 인원 (구간)";
    BacktestError => "Backtest error (MAPE)", "백테스트 오차 (MAPE)";
    Coverage => "Inside the interval", "구간 적중률";
    RoiEvents => "ROI per event", "이벤트별 ROI";
    RoiTypes => "ROI per type", "유형별 ROI";
    NoRoi => "No event with a ticket price or a cost.", "티켓 가격이나 비용이 있는 이벤트가 없습니다.";
    Currency => "Currency", "통화";
    EventsCount => "Events", "이벤트 수";
    Attendees => "Attendees", "참석자";
    Revenue => "Revenue", "수익";
    Cost => "Cost", "비용";
    Profit => "Profit", "이익";
    Roi => "ROI", "ROI";
    Final => "Final", "확정";
    Yes => "Yes", "예";
    NotYet => "Not yet", "아직";
    Mon => "Mon", "월";
    Tue => "Tue", "화";
    Wed => "Wed", "수";
    Thu => "Thu", "목";
    Fri => "Fri", "금";
    Sat => "Sat", "토";
    Sun => "Sun", "일";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::i18n::{Lang, Text};

    #[test]
    fn every_analyst_text_has_both_languages() {
        for m in A::ALL {
            assert!(
                !m.text(Lang::En).is_empty() && !m.text(Lang::Ko).is_empty(),
                "{m:?}"
            );
        }
    }
}
