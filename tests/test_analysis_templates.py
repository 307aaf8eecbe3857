"""Analysis templates: rendering and escaping, conditions, policy parsing, the Prometheus mode."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from changegate.errors import ConfigurationError, HealthSourceError
from changegate.health import (
    AnalysisTemplate,
    Condition,
    Conditions,
    PrometheusSource,
    TemplateError,
    classify,
    parse_condition,
    render,
)
from changegate.models import HealthCheck, MetricValue
from changegate.policy import Policy, PolicyError, parse_policy

HOSTILE = ['a"b', "c\\d", "e}f", 'g"}) or vector(1) #', "h\ni", "x|y.z"]


def _string_literals(query: str) -> list[str]:
    """Every double-quoted string of a PromQL query, decoded as Prometheus decodes it."""
    return [json.loads(f'"{body}"') for body in re.findall(r'"((?:[^"\\]|\\.)*)"', query)]


# --- rendering and escaping ------------------------------------------------------------------


def test_render_fills_unit_and_selector_placeholders() -> None:
    query = 'max(errors{service="{{selector.service}}",pod="{{ unit }}"})'
    assert render(query, selector={"service": "web"}, unit="web-0") == (
        'max(errors{service="web",pod="web-0"})'
    )


def test_units_is_an_anchored_literal_alternation() -> None:
    query = 'errors{pod=~"{{units}}"}'
    rendered = render(query, selector={}, units=["web.1", "a+b", "x|y"])
    (pattern,) = _string_literals(rendered)
    assert pattern == r"web\.1|a\+b|x\|y"
    for unit in ["web.1", "a+b", "x|y"]:
        assert re.fullmatch(pattern, unit)
    assert re.fullmatch(pattern, "webx1") is None


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_stays_one_label_value(value: str) -> None:
    query = 'up{service="{{selector.service}}",pod="{{unit}}"} > 0'
    rendered = render(query, selector={"service": value}, unit=value)
    # The rendered query keeps its shape: same text outside the strings, and each string
    # decodes back to exactly the value that was put in.
    skeleton = re.sub(r'"((?:[^"\\]|\\.)*)"', '""', rendered)
    assert skeleton == 'up{service="",pod=""} > 0'
    assert _string_literals(rendered) == [value, value]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_value_in_a_regex_matcher_matches_only_itself(value: str) -> None:
    rendered = render('up{pod=~"{{unit}}"}', selector={}, unit=value)
    (pattern,) = _string_literals(rendered)
    assert re.fullmatch(pattern, value)
    assert re.fullmatch(pattern, value + "x") is None


def test_single_quoted_strings_escape_their_own_quote() -> None:
    rendered = render("up{pod='{{unit}}'}", selector={}, unit="it's")
    assert rendered == "up{pod='it\\'s'}"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("up{pod={{unit}}}", "inside double quotes"),
        ("up{pod=`{{unit}}`}", "backtick"),
        ('up{pod="{{units}}"}', "regex matcher"),
        ('up{pod="{{pod}}"}', "unknown placeholder {{pod}}"),
        ('up{pod="{{unit}}",x=~"{{units}}"}', "not both"),
        ('up{pod="{{unit"}', "unclosed placeholder"),
        ('up{pod="x}', "unterminated"),
    ],
)
def test_misplaced_placeholders_are_refused(query: str, fragment: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(fragment)):
        render(query, selector={}, unit="u", units=["u"])


def test_a_missing_selector_key_is_a_health_source_error() -> None:
    with pytest.raises(HealthSourceError, match=r"selector has no 'cluster' \(keys: service\)"):
        render('up{c="{{selector.cluster}}"}', selector={"service": "web"}, units=["w"])


# --- conditions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [("> 0.05", 0.06, True), ("> 0.05", 0.05, False), (">=0.05", 0.05, True),
     ("< 1", 0.5, True), ("<= 250", 250.0, True), ("<= 250", 250.1, False)],
)  # fmt: skip
def test_conditions_compare(text: str, value: float, holds: bool) -> None:
    assert parse_condition(text).holds(value) is holds


@pytest.mark.parametrize("text", ["0.05", "== 1", "> lots", "> nan", "> inf", ">", "above 3"])
def test_malformed_conditions_are_refused(text: str) -> None:
    with pytest.raises(TemplateError, match="condition"):
        parse_condition(text)


def test_conditions_round_trip_as_text() -> None:
    assert str(parse_condition(">=  250.0")) == ">= 250"
    assert str(parse_condition("> 0.05")) == "> 0.05"
    assert AnalysisTemplate(query="up", failure=">0.1").failure == "> 0.1"


def values(*readings: float | None, metric: str = "error_rate", cap: float = 1.0) -> list[Any]:
    return [
        MetricValue(unit_id=f"u-{i}", metric=metric, value=v, max=cap)
        for i, v in enumerate(readings)
    ]


def test_classify_between_failure_and_success_is_inconclusive() -> None:
    judged = {"error_rate": Conditions(parse_condition("> 0.05"), parse_condition("<= 0.01"))}
    assert classify(values(0.0, 0.01), judged).phase == "successful"
    middle = classify(values(0.0, 0.03), judged)
    assert middle.phase == "inconclusive"
    assert middle.reason == "u-1 error_rate=0.03 not <= 0.01"
    failed = classify(values(0.0, 0.03, 0.2), judged)
    assert failed.phase == "failed"
    assert failed.reason == "u-2 error_rate=0.2 > 0.05"


def test_the_request_max_still_fails_a_value_the_template_would_pass() -> None:
    judged = {"error_rate": Conditions(failure=parse_condition("> 0.5"))}
    assert classify(values(0.2, cap=0.1), judged).phase == "failed"


def test_classify_without_conditions_is_unchanged() -> None:
    assert classify(values(0.03)).phase == "successful"
    assert classify(values(None, 0.0)).reason == "no data: u-0 error_rate"
    assert classify(values(2.0)).reason == "u-0 error_rate=2 > 1"


def test_a_higher_is_better_template() -> None:
    judged = {"success_ratio": Conditions(parse_condition("< 0.95"), parse_condition(">= 0.99"))}
    readings = values(0.999, 0.97, metric="success_ratio")
    assert classify(readings, judged).phase == "inconclusive"
    assert classify(values(0.9, metric="success_ratio"), judged).phase == "failed"


# --- policy ------------------------------------------------------------------------------------

POLICY = """
analysis_templates:
  kinds:
    fleet:
      error-ratio:
        description: Windowed error ratio per instance.
        query: max by (instance) (fleet_error_ratio{service="{{selector.service}}",instance=~"{{units}}"})
        failure: "> 0.05"
        success: "<= 0.01"
  targets:
    "fleet:service=checkout":
      error-ratio:
        query: max by (instance) (fleet_error_ratio{service="checkout",instance=~"{{units}}"})
        failure: "> 0.01"
"""  # noqa: E501


def test_policy_templates_resolve_by_target_then_kind() -> None:
    templates = parse_policy(POLICY).analysis_templates
    checkout = templates.resolve("error-ratio", kind="fleet", label="fleet:service=checkout")
    search = templates.resolve("error-ratio", kind="fleet", label="fleet:service=search")
    assert checkout is not None and checkout.failure == "> 0.01" and checkout.success is None
    assert search is not None and search.success == "<= 0.01"
    assert templates.resolve("error-ratio", kind="http", label="http:url=x") is None
    assert templates.names(kind="fleet", label="fleet:service=search") == ["error-ratio"]


def test_the_default_policy_has_no_templates_and_parses() -> None:
    assert Policy().analysis_templates.kinds == {}


@pytest.mark.parametrize(
    ("template", "line"),
    [
        (
            {"query": "up", "failure": "> 0.05", "success": "< 0.1"},
            "analysis_templates.kinds.fleet.t: failure '> 0.05' and success '< 0.1' both hold",
        ),
        ({"query": "up"}, "analysis_templates.kinds.fleet.t: a template needs a failure"),
        (
            {"query": "up", "failure": "above 3"},
            "analysis_templates.kinds.fleet.t.failure: condition 'above 3' is not `OP NUMBER`",
        ),
        (
            {"query": 'up{a="{{foo}}"}', "failure": "> 1"},
            "analysis_templates.kinds.fleet.t: unknown placeholder {{foo}}",
        ),
        (
            {"query": "up{a={{unit}}}", "failure": "> 1"},
            "analysis_templates.kinds.fleet.t: placeholder {{unit}} is in no string",
        ),
        (
            {"query": "up", "failure": "> 1", "sucess": "< 1"},
            "analysis_templates.kinds.fleet.t.sucess: unknown field 'sucess'; "
            "did you mean 'success'?",
        ),
        ({"query": "", "failure": "> 1"}, "analysis_templates.kinds.fleet.t.query: String"),
    ],
)
def test_bad_templates_are_named_policy_errors(template: dict[str, Any], line: str) -> None:
    text = json.dumps({"analysis_templates": {"kinds": {"fleet": {"t": template}}}})
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.yaml")
    assert f"- {line}" in str(caught.value)


def test_a_template_name_must_be_a_name() -> None:
    text = json.dumps(
        {"analysis_templates": {"kinds": {"fleet": {"Error Ratio": {"query": "up",
                                                                    "failure": "> 1"}}}}}
    )  # fmt: skip
    with pytest.raises(PolicyError, match=r"analysis_templates\.kinds\.fleet\.Error Ratio"):
        parse_policy(text)


def test_a_request_names_a_template_compatibly() -> None:
    assert HealthCheck(metric="error_rate", max=0.05).template is None
    check = HealthCheck.model_validate({"metric": "error_rate", "max": 1, "template": "strict"})
    assert check.template == "strict"
    with pytest.raises(ValueError, match="template"):
        HealthCheck.model_validate({"metric": "error_rate", "max": 1, "template": "Bad Name"})


# --- the Prometheus source's template mode, its HTTP mapping against a mock ----------------


def vector(series: list[tuple[dict[str, str], float | str]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels, "value": [0, str(v)]} for labels, v in series],
        },
    }


def templated_source(
    answer: Any, seen: list[str], *, defaults: dict[str, str] | None = None
) -> PrometheusSource:
    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        seen.append(query)
        return httpx.Response(200, json=answer(query))

    return PrometheusSource(
        "http://127.0.0.1:9090",
        templates=parse_policy(POLICY).analysis_templates,
        defaults=defaults,
        transport=httpx.MockTransport(handler),
    )


async def test_a_grouped_template_runs_one_query_for_all_units() -> None:
    seen: list[str] = []
    source = templated_source(
        lambda q: vector([({"instance": "s-0"}, 0.0), ({"instance": "s-1"}, 0.03)]), seen
    )
    checks = [HealthCheck(metric="error_rate", max=1, template="error-ratio")]
    selector = {"service": "search"}

    readings = await source.measure(selector, ["s-0", "s-1", "s-2"], checks)

    assert seen == [
        'max by (instance) (fleet_error_ratio{service="search",instance=~"s-0|s-1|s-2"})'
    ]
    assert [v.value for v in readings] == [0.0, 0.03, None]
    measurement = classify(readings, source.conditions(selector, checks))
    assert measurement.phase == "inconclusive"
    assert "s-1 error_rate=0.03 not <= 0.01" in measurement.reason
    # The checkout target's own template wins over the kind's: 0.03 fails there.
    checkout = {"service": "checkout"}
    assert source.conditions(checkout, checks) == {
        "error_rate": Conditions(failure=Condition(">", 0.01))
    }


async def test_a_per_unit_template_runs_once_per_unit() -> None:
    seen: list[str] = []
    per_unit = {"rss": 'max(process_rss_bytes{pod="{{unit}}",ns="{{selector.namespace}}"})'}

    def answer(query: str) -> dict[str, Any]:
        if '"p-0"' in query:
            return vector([({}, 100.0)])
        return vector([])

    source = templated_source(answer, seen, defaults=per_unit)
    readings = await source.measure(
        {"namespace": 'prod"}'}, ["p-0", "p-1"], [HealthCheck(metric="rss", max=1e9)]
    )

    assert sorted(seen) == [
        'max(process_rss_bytes{pod="p-0",ns="prod\\"}"})',
        'max(process_rss_bytes{pod="p-1",ns="prod\\"}"})',
    ]
    assert [(v.unit_id, v.value) for v in readings] == [("p-0", 100.0), ("p-1", None)]


async def test_a_per_unit_query_with_several_series_is_an_error() -> None:
    source = templated_source(
        lambda q: vector([({"a": "1"}, 1.0), ({"a": "2"}, 2.0)]),
        [],
        defaults={"rss": 'process_rss_bytes{pod="{{unit}}"}'},
    )
    with pytest.raises(HealthSourceError, match="must aggregate to one series"):
        await source.measure({"service": "x"}, ["p-0"], [HealthCheck(metric="rss", max=1)])


async def test_an_unknown_template_names_the_known_ones() -> None:
    source = templated_source(lambda q: vector([]), [], defaults={"rss": 'm{p="{{unit}}"}'})
    check = HealthCheck(metric="error_rate", max=1, template="nope")
    with pytest.raises(ConfigurationError) as caught:
        await source.measure({"service": "search"}, ["s-0"], [check])
    message = str(caught.value)
    assert "no analysis template 'nope' for fleet:service=search" in message
    assert "error-ratio" in message and "rss" in message


def test_a_bad_kind_default_query_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="default query of metric 'rss'"):
        PrometheusSource("http://127.0.0.1:9", defaults={"rss": "m{p={{unit}}}"})
