using EdgeEru.Registry.Model;

namespace EdgeEru.Mimiron.Targets;

/// <summary>An SSH login name <c>user~target</c>: who logs in, and which container they want (null when no <c>~</c>).</summary>
public sealed record LoginName(string User, string? Target)
{
    public const char Separator = '~';

    /// <summary>Splits the login name; null with a reason when the user part is not a login name.</summary>
    public static LoginName? Parse(string login, out string? problem)
    {
        problem = null;
        var i = login.IndexOf(Separator, StringComparison.Ordinal);
        var user = i < 0 ? login : login[..i];
        var target = i < 0 ? null : login[(i + 1)..];
        if (!Names.IsUser(user))
        {
            problem = $"\"{Printable(user)}\" is not a user name";
            return null;
        }
        return new LoginName(user, target);
    }

    internal static string Printable(string s) => new(s.Take(64).Select(c => char.IsControl(c) ? '?' : c).ToArray());
}
