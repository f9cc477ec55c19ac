"""Child process for the HTTP corpus test: post one file to the real preview and imports handlers
and print their answers and this process's peak RSS as JSON (run as ``python -m``)."""

from __future__ import annotations

import json
import resource
import sys
import time

import azure.functions as func


def main(path: str) -> None:
    import function_app

    handlers = {
        f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()
    }
    with open(path, "rb") as file:
        body = file.read()
    answers = {}
    for name, params in (("preview", {"date": "2020-10-05"}), ("imports", {})):
        start = time.monotonic()
        response = handlers[name](
            func.HttpRequest("POST", f"http://localhost/api/{name}", params=params, body=body)
        )
        answers[name] = {
            "status": response.status_code,
            "mimetype": response.mimetype,
            "body": response.get_body().decode("utf-8", "replace")
            if response.mimetype != "application/vnd.openxmlformats-officedocument."
            "spreadsheetml.sheet"
            else "",
            "seconds": time.monotonic() - start,
        }
    answers["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(answers))


if __name__ == "__main__":
    main(sys.argv[1])
