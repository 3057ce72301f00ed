//! English and Korean: the language of a request (a cookie set by the switch, else
//! `Accept-Language`), every text of the pages as a [`Msg`], and numbers and times written the
//! way each language writes them. Times are always shown in the event's own zone, labelled.

use chrono::{DateTime, Datelike, FixedOffset, TimeDelta, Timelike, Utc};
use muster_schemas::{AlertKind, Severity};

use crate::read::alerts::AlertState;
use crate::read::events::Status;

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Ko,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ko];

    /// The BCP 47 tag, for `<html lang>` and the cookie.
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ko => "ko",
        }
    }

    /// The language's own name, for the switch.
    pub fn name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::Ko => "한국어",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next()?.trim();
        Self::ALL
            .into_iter()
            .find(|l| l.tag().eq_ignore_ascii_case(primary))
    }

    /// The language of a request: the switch's cookie, else the best of `Accept-Language` by
    /// its weights (ties in the header's order), else English.
    pub fn negotiate(cookie: Option<&str>, accept_language: Option<&str>) -> Self {
        if let Some(lang) = cookie.and_then(Self::from_tag) {
            return lang;
        }
        let mut best: Option<(f32, Lang)> = None;
        for part in accept_language.unwrap_or_default().split(',') {
            let mut fields = part.split(';');
            let Some(lang) = fields.next().and_then(Self::from_tag) else {
                continue;
            };
            let q = fields
                .find_map(|f| f.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Self::En, |(_, l)| l)
    }

    pub fn t(self, msg: impl Text) -> &'static str {
        msg.text(self)
    }

    /// An integer with thousands separators (both languages group by three with commas).
    pub fn int(self, n: i64) -> String {
        let digits = n.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if n < 0 {
            out.push('-');
        }
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    /// A share as a percentage, whole below 10 000 %.
    pub fn percent(self, share: f64) -> String {
        format!("{}%", self.int((share * 100.0).round() as i64))
    }

    /// A time in `zone`, with its date when it is not today there.
    pub fn time(self, at: DateTime<Utc>, zone: FixedOffset, now: DateTime<Utc>) -> String {
        let local = at.with_timezone(&zone);
        let today = now.with_timezone(&zone).date_naive() == local.date_naive();
        let hm = format!("{:02}:{:02}", local.hour(), local.minute());
        match (self, today) {
            (_, true) => hm,
            (Self::En, false) => format!("{}, {hm}", self.date(at, zone)),
            (Self::Ko, false) => format!("{} {hm}", self.date(at, zone)),
        }
    }

    /// The date of `at` in `zone`.
    pub fn date(self, at: DateTime<Utc>, zone: FixedOffset) -> String {
        let local = at.with_timezone(&zone);
        match self {
            Self::En => format!(
                "{} {} {}",
                local.day(),
                MONTHS[local.month0() as usize],
                local.year()
            ),
            Self::Ko => format!("{}년 {}월 {}일", local.year(), local.month(), local.day()),
        }
    }

    /// A length of time in its two largest whole units: `45 s`, `12 min`, `1 h 5 min`,
    /// `2 d 3 h`.
    pub fn duration(self, d: TimeDelta) -> String {
        let secs = d.num_seconds().max(0);
        let (units, n): ([&str; 4], [i64; 4]) = (
            match self {
                Self::En => [" d", " h", " min", " s"],
                Self::Ko => ["일", "시간", "분", "초"],
            },
            [
                secs / 86_400,
                secs % 86_400 / 3600,
                secs % 3600 / 60,
                secs % 60,
            ],
        );
        let first = n.iter().position(|v| *v > 0).unwrap_or(3);
        let mut out = format!("{}{}", n[first], units[first]);
        if first < 2 && n[first + 1] > 0 {
            out.push_str(&format!(" {}{}", n[first + 1], units[first + 1]));
        }
        out
    }

    /// How long ago `at` was, in whole units.
    pub fn ago(self, at: DateTime<Utc>, now: DateTime<Utc>) -> String {
        let secs = (now - at).num_seconds().max(0);
        let (n, unit) = match secs {
            s if s < 60 => (s, 0),
            s if s < 3600 => (s / 60, 1),
            s if s < 86_400 => (s / 3600, 2),
            s => (s / 86_400, 3),
        };
        match self {
            Self::En => format!("{n} {} ago", ["s", "min", "h", "d"][unit]),
            Self::Ko => format!("{n}{} 전", ["초", "분", "시간", "일"][unit]),
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A zone's label: `UTC+09:00`, `UTC-03:30`, `UTC`.
pub fn zone_label(zone: FixedOffset) -> String {
    let secs = zone.local_minus_utc();
    if secs == 0 {
        return "UTC".to_owned();
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.unsigned_abs() / 60;
    format!("UTC{sign}{:02}:{:02}", m / 60, m % 60)
}

/// A set of texts in each language: `messages! { pub enum Msg { Name => "en", "ko"; … } }`.
/// Each page area keeps its texts in its own enum (this file holds the dashboard's); all of
/// them are shown through [`Lang::t`].
macro_rules! messages {
    ($(#[$doc:meta])* pub enum $enum:ident { $($name:ident => $en:literal, $ko:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $enum {
            $($name),+
        }

        impl $enum {
            #[cfg(test)]
            pub const ALL: &'static [$enum] = &[$($enum::$name),+];
        }

        impl $crate::web::i18n::Text for $enum {
            fn text(self, lang: $crate::web::i18n::Lang) -> &'static str {
                use $crate::web::i18n::Lang;
                match (self, lang) {
                    $(($enum::$name, Lang::En) => $en, ($enum::$name, Lang::Ko) => $ko,)+
                }
            }
        }
    };
}
#[allow(unused_imports)] // used by the page areas that keep their own texts
pub(crate) use messages;

/// A text the pages show, in each language.
pub trait Text: Copy {
    fn text(self, lang: Lang) -> &'static str;
}

messages! {
    /// Every text of the dashboard's pages, in each language.
    pub enum Msg {
    Product => "muster", "muster";
    SkipToContent => "Skip to content", "본문으로 건너뛰기";
    MainNavigation => "Main", "주 메뉴";
    Overview => "Overview", "개요";
    Alerts => "Alerts", "알림";
    Partners => "Partners", "파트너";
    AuditLog => "Audit log", "감사 로그";
    DeadLetters => "Dead letters", "데드 레터";
    Webhooks => "Webhooks", "웹훅";
    EventTypes => "Event types", "이벤트 유형";
    ApiKey => "API key", "API 키";
    Sql => "SQL", "SQL";
    Patterns => "Patterns", "패턴";
    Forecasts => "Forecasts", "예측";
    Language => "Language", "언어";
    SignIn => "Sign in", "로그인";
    SignOut => "Sign out", "로그아웃";
    SignInIntro => "Sign in with the admin token or a partner API key. It stays on the server: the browser keeps only a session cookie.", "관리자 토큰이나 파트너 API 키로 로그인하세요. 키는 서버에만 남고, 브라우저에는 세션 쿠키만 저장됩니다.";
    Credential => "Admin token or API key", "관리자 토큰 또는 API 키";
    SignInFailed => "That token or key is unknown or revoked.", "알 수 없거나 폐기된 토큰 또는 키입니다.";
    SignedInAs => "Signed in as", "로그인:";
    Administrator => "Administrator", "관리자";
    EventsLive => "Events live", "진행 중인 이벤트";
    PeopleInside => "People inside now", "현재 입장 인원";
    MeanAttendance => "Mean attendance rate", "평균 출석률";
    ActiveAlerts => "Active alerts", "활성 알림";
    Events => "Events", "이벤트";
    Event => "Event", "이벤트";
    Type => "Type", "유형";
    Status => "Status", "상태";
    AnyType => "Any type", "모든 유형";
    AnyStatus => "Any status", "모든 상태";
    Search => "Search name, venue, type or id", "이름, 장소, 유형, ID 검색";
    Venue => "Venue", "장소";
    EventId => "Id", "ID";
    Apply => "Apply", "적용";
    Filters => "Filters", "필터";
    Occupancy => "Occupancy", "수용률";
    Inside => "Inside", "입장 인원";
    LastHours => "Last 3 hours", "최근 3시간";
    Updated => "Updated", "갱신";
    NoEvents => "No event matches.", "조건에 맞는 이벤트가 없습니다.";
    Showing => "events shown", "개 이벤트 표시";
    OfCapacity => "of capacity", "수용 인원 대비";
    NoCapacity => "capacity unknown", "수용 인원 미정";
    NoData => "no data yet", "데이터 없음";
    SortedAscending => "sorted ascending", "오름차순 정렬";
    SortedDescending => "sorted descending", "내림차순 정렬";
    LiveOn => "Live updates on", "실시간 갱신 중";
    LiveOff => "Live updates paused, reconnecting", "실시간 갱신 끊김, 다시 연결 중";
    SparklineNumbers => "Attendance of the last 3 hours, by 15 minutes", "최근 3시간 입장 인원 (15분 단위)";
    Times => "Times are in each event's own time zone.", "시간은 각 이벤트의 현지 시간대 기준입니다.";
    Severity => "Severity", "심각도";
    Kind => "Kind", "종류";
    AnySeverity => "Any severity", "모든 심각도";
    AnyKind => "Any kind", "모든 종류";
    Raised => "Raised", "발생";
    State => "State", "상태";
    Message => "Message", "내용";
    NoAlerts => "No alert matches.", "조건에 맞는 알림이 없습니다.";
    AlertsIntro => "Active alerts and those raised in the last 24 hours, newest first.", "활성 알림과 최근 24시간 동안 발생한 알림 (최신순).";
    StatusPending => "Pending", "데이터 대기";
    StatusLive => "Live", "진행 중";
    StatusIdle => "Idle", "유휴";
    StatusDegraded => "Degraded", "저하";
    StatusScheduled => "Scheduled", "예정";
    StatusEnded => "Ended", "종료";
    StatusStale => "Stale data", "오래된 데이터";
    StateActive => "Active", "활성";
    StateResolved => "Resolved", "해소됨";
    SeverityInfo => "Info", "정보";
    SeverityWarning => "Warning", "경고";
    SeverityCritical => "Critical", "심각";
    KindOccupancy => "Occupancy", "수용 초과";
    KindGateDown => "Gate down", "게이트 중단";
    KindThroughput => "Throughput collapse", "처리량 급감";
    KindServiceDown => "Service down", "서비스 중단";
    KindUpstream => "Upstream", "원천 시스템";
    Services => "Services", "연동 서비스";
    Service => "Service", "연동 서비스";
    ServicesIntro => "Every registered upstream gate service: its health, last successful sync, lag behind now, failures in a row and the ingest process polling it.", "등록된 모든 원천 게이트 서비스의 상태, 마지막 동기화 성공, 지연, 연속 실패 횟수, 폴링 중인 수집 프로세스.";
    Health => "Health", "상태";
    HealthHealthy => "Healthy", "정상";
    HealthDegraded => "Degraded", "저하";
    HealthDown => "Down", "중단";
    HealthUnknown => "Not checked yet", "확인 전";
    LastSuccess => "Last successful sync", "마지막 동기화 성공";
    LastAttempt => "Last attempt", "마지막 시도";
    Lag => "Lag", "지연";
    Failures => "Failures in a row", "연속 실패";
    PolledBy => "Polled by", "폴링 프로세스";
    NotPolled => "not polled", "폴링 안 됨";
    LastError => "Last error", "마지막 오류";
    NoServices => "No service is registered.", "등록된 서비스가 없습니다.";
    Reason => "Reason", "사유";
    Latency => "Latency", "응답 시간";
    Authentication => "Authentication", "인증 방식";
    RegisteredAt => "Registered", "등록";
    Configuration => "Configuration", "설정";
    ConfigurationNote => "As registered; credentials are never shown.", "등록된 그대로이며, 인증 정보는 표시하지 않습니다.";
    Never => "never", "없음";
    ErrorForbidden => "You may not see this.", "볼 권한이 없습니다.";
    ErrorNotFound => "There is nothing here.", "페이지를 찾을 수 없습니다.";
    ErrorCsrf => "This form has expired or did not come from this site. Reload the page and try again.", "양식이 만료되었거나 이 사이트에서 온 것이 아닙니다. 페이지를 새로 고친 뒤 다시 시도하세요.";
    ErrorRateLimited => "Too many requests for this key. Wait a moment and reload.", "이 키의 요청이 너무 많습니다. 잠시 후 새로 고치세요.";
    ErrorUnavailable => "A backing service is unavailable. Try again shortly.", "내부 서비스를 사용할 수 없습니다. 잠시 후 다시 시도하세요.";
    ErrorOther => "Something went wrong.", "문제가 발생했습니다.";
    BackToOverview => "Back to the overview", "개요로 돌아가기";
    Registered => "Registered", "등록 인원";
    AttendanceRate => "Attendance rate", "출석률";
    Capacity => "Capacity", "수용 인원";
    TimesInZone => "All times in the event's own time zone", "모든 시간은 이벤트 현지 시간대 기준";
    OnThisPage => "On this page", "이 페이지의 내용";
    Day => "Day", "날짜";
    Time => "Time", "시각";
    Attendance => "Attendance through the day", "하루 동안의 입장 인원";
    AttendanceChart => "Chart of the people inside by minute against capacity; its numbers are in the table below.", "분 단위 입장 인원과 수용 인원 차트. 수치는 아래 표에 있습니다.";
    AttendanceNumbers => "Attendance by minute, as numbers", "분 단위 입장 인원 (수치)";
    Highest => "Highest", "최고";
    Lowest => "Lowest", "최저";
    NoSeries => "No numbers recorded for this day yet.", "이 날짜에 기록된 수치가 아직 없습니다.";
    ForecastFinal => "Forecast final attendance", "예상 최종 입장 인원";
    ForecastLow => "Forecast, low end", "예측 하한";
    ForecastHigh => "Forecast, high end", "예측 상한";
    Interval => "interval", "예측 구간";
    NoForecast => "No forecast for this event (too few similar past events, or it has ended).", "이 이벤트의 예측이 없습니다 (유사한 과거 이벤트가 부족하거나 종료됨).";
    ShowUpRate => "Expected show-up rate", "예상 참석률";
    ExpectedPeak => "Expected peak inside", "예상 최대 입장 인원";
    PeakAt => "Expected peak at", "예상 피크 시각";
    GatesNeeded => "Gates needed / open", "필요 / 개방 게이트";
    SimilarEvents => "Similar past events it stands on", "근거가 된 유사 과거 이벤트";
    BacktestError => "Method's error on past events (MAPE)", "과거 이벤트 기준 예측 오차 (MAPE)";
    Risks => "Risks", "위험";
    Gates => "Gates", "게이트";
    Gate => "Gate", "게이트";
    GateTraffic => "Entries and exits per gate per minute", "게이트별 분당 입장·퇴장";
    GateChart => "Chart of entries (solid) and exits (dashed) per gate by minute; its numbers are in the table below.", "게이트별 분당 입장(실선)과 퇴장(점선) 차트. 수치는 아래 표에 있습니다.";
    GateNumbers => "Entries and exits by minute, as numbers", "분 단위 입장·퇴장 (수치)";
    GatesShown => "Gates shown", "표시할 게이트";
    Entries => "Entries", "입장";
    Exits => "Exits", "퇴장";
    BusiestMinute => "Busiest minute", "최대 분당 입장";
    ThroughputNow => "Throughput now (/min)", "현재 처리량 (분당)";
    ThroughputUsual => "Usual (/min)", "평소 (분당)";
    AgainstUsual => "Against usual", "평소 대비";
    BelowUsual => "below usual", "평소보다 낮음";
    UsualNote => "Usual: the gate's median entries per minute over its busy minutes of the day. Now: the throughput the service last reported.", "평소: 그날 입장이 있었던 분들의 분당 입장 중앙값. 현재: 서비스가 마지막으로 보고한 처리량.";
    GateOpen => "Open", "개방";
    GateDown => "Down", "중단";
    GateUnknown => "Not reported", "보고 없음";
    GatesTruncated => "This day has more gate minutes than the page shows; the latest are left out.", "이 날짜의 게이트 기록이 페이지에 표시할 수 있는 양보다 많아 최근 기록 일부가 빠졌습니다.";
    NoGates => "No gate has reported traffic yet.", "아직 게이트 통행 기록이 없습니다.";
    AlertTimeline => "Alerts through the day", "하루 동안의 알림";
    AlertNumbers => "The alerts, as a table", "알림 (표)";
    Resolved => "Resolved", "해소";
    Duration => "Duration", "지속 시간";
    StillActive => "still active", "진행 중";
    NoAlertsToday => "No alert on this day.", "이 날짜에 알림이 없습니다.";
    ServiceHealth => "Upstream service health", "원천 서비스 상태";
    HealthNumbers => "Health changes, as a table", "상태 변화 (표)";
    Since => "Since", "부터";
    Before => "Before", "이전";
    NoHealth => "No health change recorded for this service.", "이 서비스의 상태 변화 기록이 없습니다.";
    Insights => "Insights and recommendations", "인사이트와 권장 사항";
    Recommendations => "Recommendations", "권장 사항";
    Evidence => "Evidence", "근거";
    NoRecommendations => "No recommendation for this event now.", "현재 이 이벤트에 대한 권장 사항이 없습니다.";
    ComputedAt => "Insights computed", "인사이트 계산 시각";
    RecOpenGates => "Open gates", "게이트 개방";
    RecCapacity => "Capacity", "수용 인원";
    RecUnderAttendance => "Under-attendance", "저조한 참석";
    RecPeakStaffing => "Peak staffing", "피크 인력 배치";
    RecGateImbalance => "Gate imbalance", "게이트 쏠림";
    RecCriticalAlerts => "Critical alerts", "심각 알림";
    RecStaleData => "Stale data", "오래된 데이터";
    }
}

pub fn status(lang: Lang, s: Status) -> &'static str {
    lang.t(match s {
        Status::Pending => Msg::StatusPending,
        Status::Live => Msg::StatusLive,
        Status::Idle => Msg::StatusIdle,
        Status::Degraded => Msg::StatusDegraded,
        Status::Scheduled => Msg::StatusScheduled,
        Status::Ended => Msg::StatusEnded,
        Status::Stale => Msg::StatusStale,
    })
}

pub fn severity(lang: Lang, s: Severity) -> &'static str {
    lang.t(match s {
        Severity::Info => Msg::SeverityInfo,
        Severity::Warning => Msg::SeverityWarning,
        Severity::Critical => Msg::SeverityCritical,
    })
}

pub fn alert_kind(lang: Lang, k: AlertKind) -> &'static str {
    lang.t(match k {
        AlertKind::Occupancy => Msg::KindOccupancy,
        AlertKind::GateDown => Msg::KindGateDown,
        AlertKind::ThroughputCollapse => Msg::KindThroughput,
        AlertKind::ServiceDown => Msg::KindServiceDown,
        AlertKind::Upstream => Msg::KindUpstream,
    })
}

pub fn alert_state(lang: Lang, s: AlertState) -> &'static str {
    lang.t(match s {
        AlertState::Active => Msg::StateActive,
        AlertState::Resolved => Msg::StateResolved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_cookie_wins_then_the_heaviest_accepted_language() {
        assert_eq!(Lang::negotiate(Some("ko"), Some("en")), Lang::Ko);
        assert_eq!(
            Lang::negotiate(None, Some("ko-KR,ko;q=0.9,en;q=0.8")),
            Lang::Ko
        );
        assert_eq!(
            Lang::negotiate(None, Some("fr, en;q=0.5, ko;q=0.7")),
            Lang::Ko
        );
        assert_eq!(Lang::negotiate(None, Some("en-GB, ko")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("ko;q=0")), Lang::En);
        assert_eq!(Lang::negotiate(Some("xx"), None), Lang::En);
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(Lang::En.int(0), "0");
        assert_eq!(Lang::En.int(999), "999");
        assert_eq!(Lang::Ko.int(1234567), "1,234,567");
        assert_eq!(Lang::En.int(-12345), "-12,345");
        assert_eq!(Lang::En.percent(0.456), "46%");
    }

    #[test]
    fn times_are_in_the_events_zone_with_a_date_when_not_today() {
        let seoul = FixedOffset::east_opt(9 * 3600).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 5, 7, 0).unwrap();
        assert_eq!(Lang::En.time(at, seoul, at), "14:07");
        let later = at + chrono::Duration::days(2);
        assert_eq!(Lang::En.time(at, seoul, later), "24 Nov 2026, 14:07");
        assert_eq!(Lang::Ko.time(at, seoul, later), "2026년 11월 24일 14:07");
        assert_eq!(zone_label(seoul), "UTC+09:00");
        assert_eq!(
            zone_label(FixedOffset::west_opt(210 * 60).unwrap()),
            "UTC-03:30"
        );
        assert_eq!(zone_label(FixedOffset::east_opt(0).unwrap()), "UTC");
        assert_eq!(
            Lang::Ko.ago(at, at + chrono::Duration::minutes(3)),
            "3분 전"
        );
        assert_eq!(
            Lang::En.ago(at, at + chrono::Duration::seconds(5)),
            "5 s ago"
        );
    }

    #[test]
    fn durations_keep_their_two_largest_units() {
        let d = |s| TimeDelta::seconds(s);
        assert_eq!(Lang::En.duration(d(0)), "0 s");
        assert_eq!(Lang::En.duration(d(45)), "45 s");
        assert_eq!(Lang::En.duration(d(12 * 60 + 5)), "12 min");
        assert_eq!(Lang::En.duration(d(3600 + 5 * 60 + 9)), "1 h 5 min");
        assert_eq!(Lang::En.duration(d(7200)), "2 h");
        assert_eq!(Lang::En.duration(d(2 * 86_400 + 3 * 3600 + 60)), "2 d 3 h");
        assert_eq!(Lang::Ko.duration(d(3600 + 5 * 60)), "1시간 5분");
        assert_eq!(Lang::Ko.duration(d(-5)), "0초");
    }

    #[test]
    fn every_message_has_both_languages() {
        for m in Msg::ALL {
            assert!(
                !m.text(Lang::En).is_empty() && !m.text(Lang::Ko).is_empty(),
                "{m:?}"
            );
        }
    }
}
