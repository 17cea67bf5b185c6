using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace EdgeEru.Hosting;

/// <summary>A service's settings section, checked when the host starts by the options' own list of problems.</summary>
public static class OptionsProblems
{
    /// <summary>
    /// Binds <typeparamref name="T"/> to <paramref name="section"/> and refuses to start while
    /// <paramref name="problems"/> finds any, naming them all at once.
    /// </summary>
    public static IServiceCollection AddCheckedOptions<T>(this IServiceCollection services, IConfiguration configuration, string section,
        Func<T, IReadOnlyList<string>> problems) where T : class
    {
        services.AddOptions<T>().Bind(configuration.GetSection(section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<T>>(new Validator<T>(problems));
        return services;
    }

    private sealed class Validator<T>(Func<T, IReadOnlyList<string>> problems) : IValidateOptions<T> where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options)
        {
            var found = problems(options);
            return found.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(found);
        }
    }
}
