#!/usr/bin/env python3
"""Adds the Worker Manager API (issue 6) to server/openapi.json.

Touches only the /v1/workers paths, the Worker and WorkerInfo schemas and
the worker fields of AllocUpdate and Allocation; idempotent. Run from the
repository root: python3 tools/openapi_workers.py
"""
import json

PATH = "server/openapi.json"
STALE = {
    "name": "stale", "in": "query", "schema": {"type": "boolean"},
    "description": "answer from this server's state instead of the leader's "
                   "(see X-Ciplat-Last-Contact and X-Ciplat-Known-Leader)",
}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
      "description": "worker (allocation) ID or unique ID prefix"}
ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def ok(desc, ref, array=False, ctype="application/json"):
    schema = {"$ref": "#/components/schemas/" + ref}
    if array:
        schema = {"type": "array", "items": schema}
    return {"description": desc, "content": {ctype: {"schema": schema}}}


def main():
    with open(PATH) as f:
        doc = json.load(f)
    p = doc["paths"]
    p["/v1/workers"] = {"get": {
        "summary": "List the live workers of every node, newest first (?all=true includes ended ones)",
        "parameters": [
            {"name": "all", "in": "query", "schema": {"type": "boolean"},
             "description": "include workers that ended"},
            {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
             "description": "answer at most this many workers; X-Ciplat-Next-Token names the next page"},
            {"name": "next_token", "in": "query", "schema": {"type": "string"},
             "description": "the X-Ciplat-Next-Token of the previous page"},
            {"name": "index", "in": "query", "schema": {"type": "integer"}},
            {"name": "wait", "in": "query", "schema": {"type": "string"}},
            STALE,
        ],
        "responses": {"200": dict(ok("workers", "Worker", array=True), headers={
            "X-Ciplat-Next-Token": {"schema": {"type": "string"},
                                    "description": "with per_page, when more workers follow: pass as next_token"},
        }), "400": ERR},
    }}
    p["/v1/workers/{id}"] = {
        "get": {
            "summary": "Read a worker",
            "parameters": [ID, {"name": "index", "in": "query", "schema": {"type": "integer"}},
                           {"name": "wait", "in": "query", "schema": {"type": "string"}}, STALE],
            "responses": {"200": ok("worker", "Worker"), "404": ERR},
        },
        "delete": {
            "summary": "Terminate a worker (idempotent): its allocation is stopped, the client destroys "
                       "the worker and the job is retried or fails per its retry policy with the reason "
                       "\"worker terminated by operator\"",
            "parameters": [ID],
            "responses": {"200": ok("the worker as committed", "Worker"), "404": ERR},
        },
    }
    p["/v1/workers/{id}/logs"] = {"get": {
        "summary": "The step output of the job attempt the worker ran, NDJSON LogEntry lines",
        "parameters": [
            ID,
            {"name": "step", "in": "query", "schema": {"type": "string"}},
            {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
            {"name": "after", "in": "query", "schema": {"type": "integer"},
             "description": "resume after this sequence number"},
            STALE,
        ],
        "responses": {"200": ok("log entries", "LogEntry", ctype="application/x-ndjson"), "404": ERR},
    }}
    s = doc["components"]["schemas"]
    str_ = {"type": "string"}
    s["WorkerInfo"] = {"type": "object", "properties": {
        "driver": str_, "handle_id": str_, "image": str_,
        "state": {"type": "string", "enum": ["creating", "running", "terminated", "failed"]},
        "reason": str_,
        "started_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": "string", "format": "date-time"},
        "stop_requested": {"type": "boolean"},
    }}
    s["Worker"] = {"type": "object", "properties": {
        "id": str_, "driver": str_, "handle_id": str_, "node_id": str_, "node_name": str_,
        "job_id": str_, "job_name": str_, "pipeline_id": str_, "attempt": {"type": "integer"},
        "image": str_,
        "state": {"type": "string", "enum": ["creating", "running", "terminated", "failed"]},
        "reason": str_, "live": {"type": "boolean"}, "desired_status": str_, "client_status": str_,
        "stop_requested": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": "string", "format": "date-time"},
        "ended_at": {"type": "string", "format": "date-time"},
        "age": {"type": "string", "description": "how long the worker has existed (until it ended)"},
    }, "required": ["id", "node_id", "job_id", "state", "live", "age"]}
    au = s["AllocUpdate"]["properties"]
    for k in ("driver", "worker_id", "image"):
        au[k] = dict(str_)
    au["worker_state"] = {"type": "string", "enum": ["creating", "running", "terminated", "failed"]}
    s["Allocation"]["properties"]["worker"] = {"$ref": "#/components/schemas/WorkerInfo"}
    with open(PATH, "w") as f:
        f.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
