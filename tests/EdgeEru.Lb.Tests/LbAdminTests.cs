using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Xunit;

namespace EdgeEru.Lb.Tests;

/// <summary>The admin API of the same running balancer: token, domains with validation, explain.</summary>
public sealed partial class LbProxyTests
{
    private async Task<(int Status, string Body)> Admin(HttpMethod method, string path, string? body = null, string? token = Token)
    {
        using var req = new HttpRequestMessage(method, path);
        if (token is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) req.Content = new StringContent(body, Encoding.UTF8, "application/json");
        using var resp = await _admin.SendAsync(req);
        return ((int)resp.StatusCode, await resp.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_admin_API_refuses_requests_without_the_token()
    {
        Assert.Equal(401, (await Admin(HttpMethod.Get, "/api/domains", token: null)).Status);
        Assert.Equal(401, (await Admin(HttpMethod.Get, "/api/domains", token: "guess")).Status);
        Assert.Equal(401, (await Admin(HttpMethod.Delete, "/api/domains/hello.test", token: null)).Status);
        Assert.StartsWith("v", await Get("/"), StringComparison.Ordinal); // nothing was deleted
    }

    [Fact]
    public async Task The_admin_API_sets_gets_and_deletes_domains_with_validation()
    {
        var (status, list) = await Admin(HttpMethod.Get, "/api/domains");
        Assert.Equal(200, status);
        Assert.Contains("hello.test", list, StringComparison.Ordinal);
        Assert.Contains(
            "\"init\":\"canary-header\"", (await Admin(HttpMethod.Get, "/api/domains/hello.test")).Body, StringComparison.Ordinal);

        var bad = await Admin(HttpMethod.Put, "/api/domains/shop.test",
            """{"v":1,"name":"shop.test","init":"a","nodes":{"a":""" +
            """{"type":"path","match":"regex","value":"([","succ":"b","fail":"b"},"b":{"type":"respond","status":200}}}""");
        Assert.Equal(400, bad.Status);
        using (var doc = JsonDocument.Parse(bad.Body))
            Assert.StartsWith(
                "node \"a\": regex \"([\" is invalid", doc.RootElement.GetProperty("problems")[0].GetString(), StringComparison.Ordinal);
        Assert.Equal(400, (await Admin(HttpMethod.Put, "/api/domains/shop.test", "{not json")).Status);

        var good = await Admin(HttpMethod.Put, "/api/domains/shop.test",
            """{"v":1,"name":"shop.test","init":"a","nodes":{"a":{"type":"respond","status":200,"body":"shop"}}}""");
        Assert.Equal(200, good.Status);
        await Until(async () => await Get("/", host: "shop.test") == "shop", "domain set through the admin API serves");
        Assert.Equal(200, (await Admin(HttpMethod.Delete, "/api/domains/shop.test")).Status);
        await Until(async () => (await Get("/", host: "shop.test")).StartsWith("404", StringComparison.Ordinal), "deleted domain is gone");
        Assert.Equal(404, (await Admin(HttpMethod.Delete, "/api/domains/shop.test")).Status);
    }

    [Fact]
    public async Task Explain_says_why_a_request_goes_where_it_goes()
    {
        var (status, body) = await Admin(
            HttpMethod.Post, "/api/explain", """{"host":"hello.test","path":"/x","headers":{"X-Canary":"1"}}""");
        Assert.Equal(200, status);
        using var doc = JsonDocument.Parse(body);
        var path = doc.RootElement.GetProperty("path").EnumerateArray().Select(p => p.GetProperty("node").GetString()!).ToArray();
        Assert.Equal(["canary-header", "v2"], path);
        Assert.True(doc.RootElement.GetProperty("path")[0].GetProperty("matched").GetBoolean());
        Assert.Equal("v2", doc.RootElement.GetProperty("terminal").GetProperty("node").GetString());
        var live = doc.RootElement.GetProperty("backend").GetProperty("live").EnumerateArray()
            .Select(w => w.GetProperty("address").GetString()!).ToArray();
        Assert.Equal(["127.0.0.4"], live);
        Assert.Equal(404, (await Admin(HttpMethod.Post, "/api/explain", """{"host":"nowhere.test"}""")).Status);
    }
}
