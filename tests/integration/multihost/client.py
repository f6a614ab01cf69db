"""The test's HTTP client for the web host's API, with an API key, as a script would use it."""

import json
from pathlib import Path

import urllib3

from tests.waiting import wait_until


class ApiClient:
    def __init__(self, base_url: str, api_key: str):
        self.base_url = f"{base_url}/api/v1"
        self.headers = {"X-API-Key": api_key}
        self.http = urllib3.PoolManager(
            maxsize=16, timeout=urllib3.Timeout(total=60), retries=False
        )

    def _request(self, method: str, path: str, **arguments) -> urllib3.BaseHTTPResponse:
        headers = {**self.headers, **arguments.pop("headers", {})}
        return self.http.request(method, self.base_url + path, headers=headers, **arguments)

    def wait_until_live(self, timeout: float = 60) -> None:
        def live():
            try:
                return self._request("GET", "/health/live", timeout=2).status == 200
            except urllib3.exceptions.HTTPError:
                return False

        wait_until(live, timeout=timeout, what=f"the web host to answer at {self.base_url}")

    def submit(self, task_type: str, task_input: dict) -> str:
        """POST /tasks/; the new task's id."""
        response = self._request(
            "POST", "/tasks/", json={"task_type": task_type, "input": task_input}
        )
        assert response.status == 202, (response.status, response.data[:500])
        return response.json()["id"]

    def upload(self, path: Path) -> str:
        """POST /documents/ (multipart); the new document's id."""
        fields = {"file": (path.name, path.read_bytes())}
        response = self._request("POST", "/documents/", fields=fields)
        assert response.status == 202, (response.status, response.data[:500])
        return response.json()["id"]

    def get(self, path: str) -> dict:
        response = self._request("GET", path)
        assert response.status == 200, (response.status, response.data[:500])
        return json.loads(response.data)

    def text(self, path: str) -> str:
        response = self._request("GET", path)
        assert response.status == 200, (response.status, response.data[:500])
        return response.data.decode()
