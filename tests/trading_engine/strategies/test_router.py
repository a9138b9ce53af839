"""`/trading/strategies`: the catalog, and saved configurations validated on save."""

from __future__ import annotations

import httpx


async def test_the_catalog_lists_the_builtins_with_json_schema_parameters(
    client: httpx.AsyncClient, new_user
) -> None:
    user = await new_user()
    response = await client.get("/trading/strategies/catalog", headers=user.headers)
    assert response.status_code == 200
    entries = {e["name"]: e for e in response.json()["items"]}
    assert {"ma_crossover", "rsi_divergence", "bollinger_bands", "rules"} <= set(entries)
    assert entries["ma_crossover"]["parameters"]["properties"]["fast"]["type"] == "integer"


async def test_the_catalog_needs_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/trading/strategies/catalog")).status_code == 401


async def test_a_saved_strategy_is_validated_against_its_schema(
    client: httpx.AsyncClient, new_user
) -> None:
    user = await new_user()
    bad = await client.post(
        "/trading/strategies",
        json={"name": "x", "strategy": "ma_crossover", "parameters": {"fast": 30, "slow": 10}},
        headers=user.headers,
    )
    unknown = await client.post(
        "/trading/strategies",
        json={"name": "x", "strategy": "no_such_thing", "parameters": {}},
        headers=user.headers,
    )
    good = await client.post(
        "/trading/strategies",
        json={"name": "mine", "strategy": "ma_crossover", "parameters": {"fast": 5}},
        headers=user.headers,
    )

    assert bad.status_code == 422
    assert "fast must be smaller than slow" in bad.json()["detail"]
    assert unknown.status_code == 422
    assert good.status_code == 201
    assert good.json()["parameters"] == {"fast": 5, "slow": 30, "ma": "sma"}
    assert good.json()["warmup"] == 30


async def test_rule_strategies_are_parsed_on_save(client: httpx.AsyncClient, new_user) -> None:
    user = await new_user()
    broken = await client.post(
        "/trading/strategies",
        json={"name": "r", "strategy": "rules", "parameters": {"entry": "rsi(14) <", "exit": "1"}},
        headers=user.headers,
    )
    evil = await client.post(
        "/trading/strategies",
        json={
            "name": "r",
            "strategy": "rules",
            "parameters": {"entry": "__import__('os').system('x')", "exit": "close > 1"},
        },
        headers=user.headers,
    )
    fine = await client.post(
        "/trading/strategies",
        json={
            "name": "r",
            "strategy": "rules",
            "parameters": {"entry": "rsi(14) < 30 and close > sma(50)", "exit": "rsi(14) > 70"},
        },
        headers=user.headers,
    )
    assert broken.status_code == 422
    assert broken.json()["detail"].startswith("Invalid parameters for rules: ")
    assert broken.json()["detail"].lower().count("invalid parameters") == 1
    assert broken.json()["errors"][0]["loc"] == ["body", "parameters"]
    assert evil.status_code == 422
    assert fine.status_code == 201, fine.text


async def test_text_postgresql_cannot_store_is_a_422(client: httpx.AsyncClient, new_user) -> None:
    user = await new_user()
    for body in (
        {"name": "a\u0000b", "strategy": "ma_crossover"},
        {"name": "ok", "strategy": "ma_crossover", "parameters": {"ma": "s\u0000ma"}},
        {"name": "x" * 101, "strategy": "ma_crossover"},
    ):
        response = await client.post("/trading/strategies", json=body, headers=user.headers)
        assert response.status_code == 422, response.text
    assert (await client.get("/trading/strategies", headers=user.headers)).json()["total"] == 0


async def test_strategies_are_updated_deleted_and_private(
    client: httpx.AsyncClient, new_user
) -> None:
    alice, bob = await new_user(), await new_user()
    created = await client.post(
        "/trading/strategies",
        json={"name": "a", "strategy": "ma_crossover", "parameters": {}},
        headers=alice.headers,
    )
    sid = created.json()["id"]

    assert (await client.get(f"/trading/strategies/{sid}", headers=bob.headers)).status_code == 404
    assert (await client.get("/trading/strategies", headers=bob.headers)).json()["items"] == []
    patched = await client.patch(
        f"/trading/strategies/{sid}",
        json={"name": "renamed", "parameters": {"fast": 3, "slow": 9}},
        headers=alice.headers,
    )
    assert patched.json()["name"] == "renamed"
    assert patched.json()["parameters"]["slow"] == 9
    refused = await client.patch(
        f"/trading/strategies/{sid}", json={"parameters": {"fast": 0}}, headers=alice.headers
    )
    assert refused.status_code == 422
    assert (
        await client.delete(f"/trading/strategies/{sid}", headers=bob.headers)
    ).status_code == 404
    assert (
        await client.delete(f"/trading/strategies/{sid}", headers=alice.headers)
    ).status_code == 204
