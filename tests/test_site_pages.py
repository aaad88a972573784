"""The platform's own pages around the others: the 404 and 500 pages in the site's layout (the
API's /v1/ paths keep answering in its own formats) and the Swagger UI's way back."""

from django.test import Client, RequestFactory

from thisdb_site.views import server_error


def test_a_page_that_does_not_exist_is_a_404_in_the_sites_layout(alice):
    response = alice.browser.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and "<code>/no/such/page/</code>" in html
    assert 'href="/static/css/thisdb.css"' in html
    assert 'class="nav-links"' in html and 'href="/buckets/"' in html  # the site's navigation
    assert 'href="/docs/"' in html


def test_another_accounts_bucket_page_is_the_same_404(alice, bob):
    bucket = bob.new_bucket()
    response = alice.browser.get(f"/buckets/{bucket}/")
    assert response.status_code == 404
    assert b"Page not found" in response.content


def test_the_apis_404_keeps_its_own_formats(alice):
    text = alice.client.get("/v1//x")
    assert text.status_code == 404
    assert text["Content-Type"] == "text/plain; charset=utf-8"
    assert b"<html" not in text.content
    as_json = alice.client.get("/v1//x?format=json")
    assert as_json.status_code == 404 and "error" in as_json.json()


def test_the_500_page_is_in_the_sites_style_and_asks_nothing_of_the_database():
    # No db fixture: pytest-django refuses any database access in this test.
    response = server_error(RequestFactory().get("/buckets/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html
    assert 'href="/static/css/thisdb.css"' in html and 'href="/"' in html


def test_swagger_links_back_to_the_docs_and_home(db):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<nav class="back"' in html
    assert 'href="/docs/">API reference</a>' in html and 'href="/">Home</a>' in html
    nonce = response["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'<style nonce="{nonce}">' in html  # its own little style, allowed by the CSP
